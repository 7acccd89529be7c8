"""Email (``.eml``, RFC 5322 / MIME), read with the standard library's ``email`` package
and ``policy.default``: subject → title, sender → author, Date → date, the plain-text body
(else the HTML body, read as text) → text.

Attachments the registry can read (``Source.can_read``) become their own documents
(records 2, 3, ... after the email itself), with ``parent`` in their metadata; the others
are listed in the email's ``attachments`` metadata and ignored.  Outlook ``.msg`` is not
read (see docs/formats.md).
"""

from __future__ import annotations

import re
from typing import Any

from worker.errors import CorruptDocument, NoExtractableText, TooLarge
from worker.pipeline.formats.base import (
    CERTAIN,
    NO,
    Deadline,
    Embedded,
    Format,
    Head,
    Parsed,
    ParseResult,
    Source,
    as_line,
)
from worker.pipeline.formats.markup import html_text

EMAIL = "email"
MAX_ATTACHMENTS = 100
#: Multipart containers one email may declare.  The standard library's parser slows down
#: badly on deeply nested multiparts (2,000 nested in 80 KB took 6 s); real mail has a few.
MAX_MULTIPARTS = 100
_BOUNDARY = re.compile(rb"boundary\s*=", re.IGNORECASE)
_BOUNDARY_VALUE = re.compile(rb'boundary\s*=\s*"?([^";\r\n]{1,200})', re.IGNORECASE)
#: Parts (boundary lines) one email may hold.
MAX_PARTS = 200
#: A header field longer than this is cut before the standard library parses it: its
#: structured-header parser is superlinear (a 100 KB From: list took 30 s; 4 KB, 0.13 s).
MAX_HEADER_CHARS = 4096
MAX_PART_HEADER_CHARS = 1024  # a MIME part's headers are read several times each
MAX_HEADER_FIELDS = 200
TIME_BUDGET_SECONDS = 60.0
_HEADER_BLOCK = re.compile(rb"\A(?:[!-9;-~]{1,76}:[^\n]*\n(?:[ \t][^\n]*\n)*){2,200}?\r?\n", re.MULTILINE)
_FIELD = re.compile(rb"^([A-Za-z][A-Za-z0-9-]{0,75}):", re.MULTILINE)
_MAIL_ONLY = {b"message-id", b"mime-version", b"received", b"return-path", b"x-mailer", b"delivered-to"}


def sniff(head: Head) -> float:
    """A header block with From and Subject or Date, and a header only mail has (Message-ID,
    MIME-Version, Received, ...): a plain-text file with a ``Title:`` header stays text."""
    block = _HEADER_BLOCK.match(head.raw.replace(b"\r\n", b"\n")[:65536])
    if block is None:
        return NO
    names = {m.lower() for m in _FIELD.findall(block[0])}
    if b"from" in names and (b"subject" in names or b"date" in names) and names & _MAIL_ONLY:
        return CERTAIN
    return NO


def parse(source: Source) -> ParseResult:
    import email
    import email.policy
    from email.message import EmailMessage

    multiparts = len(_BOUNDARY.findall(source.raw))
    if multiparts > MAX_MULTIPARTS:
        raise TooLarge(
            f"the email declares {multiparts} multipart containers, more than the {MAX_MULTIPARTS} read from one"
            " message (real mail nests a few)",
            limit=MAX_MULTIPARTS,
        )
    raw, cut = _bounded_headers(source.raw)
    deadline = Deadline(TIME_BUDGET_SECONDS, "email")
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return _parse(message, source, deadline, cut)
    except RecursionError:
        raise CorruptDocument("the email's headers or parts are nested too deeply to read") from None


def _parse(message: Any, source: Source, deadline: Deadline, cut: int) -> ParseResult:
    body, kind = _body(message)
    subject = _header(message, "subject")
    if not body:
        raise NoExtractableText("the email has no text or HTML body", subject=subject)
    parsed = Parsed(EMAIL, body, title=subject, encoding="mime")
    if cut:
        parsed.warnings.append(
            f"email: {cut} header field(s) cut (over {MAX_HEADER_CHARS} characters, {MAX_PART_HEADER_CHARS} in a"
            f" MIME part, or past the {MAX_HEADER_FIELDS}th field of a block)"
        )
    parsed.author = _sender(message)
    parsed.date_raw = _header(message, "date")
    parsed.language = _header(message, "content-language")
    meta: dict[str, Any] = {"body_format": kind}
    for key, header in (("message_id", "message-id"), ("to", "to"), ("cc", "cc"), ("sender_address", "from")):
        if value := _header(message, header):
            meta[key] = value
    attachments, embedded = _attachments(message, source, meta, deadline)
    if attachments:
        meta["attachments"] = attachments
    parsed.metadata = meta
    if not embedded:
        return parsed
    return [(1, parsed), *((n, e) for n, e in enumerate(embedded, 2))]


def _bounded_headers(raw: bytes) -> tuple[bytes, int]:
    """The message with every header field cut to ``MAX_HEADER_CHARS`` (``MAX_PART_HEADER_CHARS``
    in a MIME part) and each header block to ``MAX_HEADER_FIELDS`` fields; the number of
    fields cut.  Too many parts is ``too_large``.  Body lines are never touched."""
    delimiters = {b"--" + b.strip() for b in _BOUNDARY_VALUE.findall(raw)}
    lines = raw.splitlines(keepends=True)
    parts = sum(1 for line in lines if line.startswith(b"--") and line.rstrip(b"\r\n") in delimiters)
    if parts > MAX_PARTS:
        raise TooLarge(
            f"the email holds {parts} MIME parts, more than the {MAX_PARTS} read from one message", limit=MAX_PARTS
        )
    out: list[bytes] = []
    in_header, field_chars, fields, cut, dropping = True, 0, 0, 0, False
    limit = MAX_HEADER_CHARS
    for line in lines:
        bare = line.rstrip(b"\r\n")
        if not in_header:
            out.append(line)
            if line.startswith(b"--") and bare in delimiters:
                in_header, fields, dropping, limit = True, 0, False, MAX_PART_HEADER_CHARS
            continue
        if not bare:
            in_header = False
            out.append(line)
            continue
        if line[:1] in (b" ", b"\t"):  # a continuation of the field before
            if dropping:
                continue
            field_chars += len(bare)
        else:
            fields += 1
            field_chars, dropping = len(bare), fields > MAX_HEADER_FIELDS
            if dropping:
                cut += 1
                continue
        if field_chars > limit:
            keep = max(0, len(bare) - (field_chars - limit))
            out.append(bare[:keep] + line[len(bare) :])
            dropping = True
            cut += 1
            continue
        out.append(line)
    return b"".join(out), cut


def _header(message: Any, name: str) -> str | None:
    try:
        value = message.get(name)
    except (ValueError, TypeError, IndexError, RecursionError):  # a malformed header the policy cannot parse
        return None
    return as_line(str(value)) if value is not None else None


def _sender(message: Any) -> str | None:
    try:
        sender = message.get("from")
        addresses = getattr(sender, "addresses", ())
    except (ValueError, TypeError, IndexError, RecursionError):
        return _header(message, "from")
    names = [a.display_name or a.addr_spec for a in addresses if a.display_name or a.addr_spec]
    return as_line(", ".join(names)) if names else _header(message, "from")


def _body(message: Any) -> tuple[str, str]:
    for preference in ("plain", "html"):
        part = message.get_body(preferencelist=(preference,))
        if part is None:
            continue
        try:
            content = part.get_content()
        except (LookupError, ValueError, AssertionError):  # an unknown charset or broken transfer encoding
            payload = part.get_payload(decode=True) or b""
            content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
        text = html_text(content) if preference == "html" else str(content).strip()
        if text:
            return text, preference
    return "", ""


def _attachments(
    message: Any, source: Source, email_meta: dict[str, Any], deadline: Deadline
) -> tuple[list[dict[str, Any]], list[Embedded]]:
    listed: list[dict[str, Any]] = []
    embedded: list[Embedded] = []
    parent = {
        k: v
        for k, v in (
            ("format", EMAIL),
            ("record", 1),
            ("message_id", email_meta.get("message_id")),
            ("subject", _header(message, "subject")),
            ("filename", source.filename or None),
        )
        if v is not None
    }
    for number, part in enumerate(message.iter_attachments()):
        if number >= MAX_ATTACHMENTS:
            break
        deadline.check()
        name = part.get_filename() or ""
        try:
            content = part.get_content()
        except (LookupError, ValueError, AssertionError):
            content = part.get_payload(decode=True) or b""
        raw = (
            content.encode("utf-8")
            if isinstance(content, str)
            else bytes(content)
            if isinstance(content, bytes)
            else b""
        )
        readable = bool(name) and bool(raw) and source.can_read(raw, name)
        listed.append({"filename": name, "content_type": part.get_content_type(), "size": len(raw), "read": readable})
        if readable:
            embedded.append(Embedded(raw, name, {"parent": parent, "attachment": name}))
    return listed, embedded


FORMAT = Format(
    name=EMAIL,
    label="Email (`email`)",
    sniff=sniff,
    parse=parse,
    extensions=(".eml",),
    reads_bytes=True,
    record_name="part",
    recognised="`.eml`; other names starting with a mail header block (From, Subject or Date, and"
    " Message-ID, MIME-Version or Received)",
    fields="Subject → title; From (display name) → author; Date → date; text/plain, else text/html → text;"
    " Message-ID, To, Cc → metadata; readable attachments → their own documents (records 2, ...) with"
    " `parent`; others listed in `attachments`",
    failures=("no_text_extracted", "corrupt_document", "too_large", "too_slow"),
)
