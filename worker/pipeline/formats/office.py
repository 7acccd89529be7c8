"""Word processing files: DOCX (Office Open XML) and ODT (OpenDocument Text).

Both are ZIP archives of XML parts.  They are read here with ``zipfile`` and the hardened
XML reader rather than python-docx/odfpy, so that every inflated byte is counted: a part
over ``MAX_PART_BYTES`` or inflating more than ``MAX_RATIO`` times (a zip bomb) fails as
``too_large`` before it is inflated, and at most the limit is ever read.  Text comes out in
reading order (paragraphs, headings and table cells as they appear); deleted revisions and
field codes are left out.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from typing import Any

from worker.errors import CorruptDocument, EncryptedDocument, NoExtractableText, TooLarge
from worker.pipeline.formats.base import CERTAIN, NO, Deadline, Format, Head, Parsed, Source, as_line
from worker.pipeline.formats.markup import local_name
from worker.pipeline.formats.xmlsafe import attribute, child, parse_xml, text_of

DOCX, ODT = "docx", "odt"
MAX_PART_BYTES = 50 * 1024 * 1024
MAX_RATIO = 200  # inflated / compressed; real documents stay far below
MAX_ENTRIES = 5000
TIME_BUDGET_SECONDS = 60.0
_ZIP = b"PK\x03\x04"
_CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE compound file: how Office stores an encrypted .docx
_ODT_MIME = b"application/vnd.oasis.opendocument.text"
#: What zipfile and zlib raise on a damaged archive (NotImplementedError: an unknown
#: compression method or version; RuntimeError: a part that needs a password).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError, RuntimeError)
_HEADING = re.compile(r"(?:title|heading\s*1)", re.IGNORECASE)


def sniff_docx(head: Head) -> float:
    return CERTAIN if head.raw.startswith(_ZIP) and b"word/" in head.raw else NO


def sniff_odt(head: Head) -> float:
    return (
        CERTAIN if head.raw.startswith(_ZIP) and head.raw[30:38] == b"mimetype" and _ODT_MIME in head.raw[:200] else NO
    )


def _open(raw: bytes, what: str) -> zipfile.ZipFile:
    if raw.startswith(_CFB):
        raise EncryptedDocument(f"the {what} file is encrypted (password-protected); seedworker has no password")
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except _ZIP_ERRORS as exc:
        raise CorruptDocument(f"the {what} file is not a readable ZIP archive: {exc}") from None
    if len(archive.infolist()) > MAX_ENTRIES:
        raise TooLarge(f"the {what} archive holds over {MAX_ENTRIES} entries", limit=MAX_ENTRIES)
    return archive


def _read(archive: zipfile.ZipFile, name: str, what: str, *, required: bool = True) -> bytes | None:
    """One part, inflated only if its declared size and ratio are sane, and never past the limit."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        if required:
            raise CorruptDocument(f"the {what} file has no {name} part") from None
        return None
    if info.flag_bits & 0x1:
        raise EncryptedDocument(f"the {what} file's parts are encrypted; seedworker has no password")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > MAX_PART_BYTES or (info.file_size > 1024 * 1024 and ratio > MAX_RATIO):
        raise TooLarge(
            f"the {what} part {name} inflates to {info.file_size} bytes ({ratio:.0f}x its compressed size):"
            " over the limit, or a zip bomb",
            limit=MAX_PART_BYTES,
        )
    try:
        with archive.open(info) as handle:
            data = handle.read(MAX_PART_BYTES + 1)
    except _ZIP_ERRORS as exc:
        raise CorruptDocument(f"the {what} part {name} cannot be read: {exc}") from None
    if len(data) > MAX_PART_BYTES:
        raise TooLarge(f"the {what} part {name} inflates past {MAX_PART_BYTES} bytes", limit=MAX_PART_BYTES)
    return data


def _paragraphs(
    root: Any, deadline: Deadline, *, paragraph: set[str], heading: Any, skip: set[str], mixed: bool
) -> list[tuple[bool, str]]:
    """``(is_heading, text)`` for every paragraph in document order, walked without
    recursion; a paragraph nested in another (a text box) is its own paragraph.

    ``mixed``: ODF keeps text in any element and in the tails after child elements; DOCX
    only in ``w:t`` (its other whitespace is indentation and must not split words).
    """
    out: list[tuple[bool, str]] = []
    buffer: list[str] = []
    is_heading = False

    def flush() -> None:
        lines = "".join(buffer).split("\n")
        text = "\n".join(" ".join(line.split()) for line in lines).strip()
        if text:
            out.append((is_heading, text))
        buffer.clear()

    stack: list[tuple[Any, str]] = [(root, "open")]
    steps = 0
    while stack:
        node, action = stack.pop()
        steps += 1
        if steps % 10_000 == 0:
            deadline.check()
        if action == "text":
            buffer.append(node)
            continue
        if action == "close":
            flush()
            continue
        name = local_name(node.tag)
        if name in skip:
            continue
        if name in paragraph:
            flush()
            is_heading = bool(heading(node))
            stack.append((node, "close"))
        if name == "tab":
            buffer.append(" ")
        elif name in ("br", "cr", "line-break"):
            buffer.append("\n")
        elif name == "s" and mixed:
            buffer.append(" " * min(int(attribute(node, "c") or 1), 100))
        elif (name == "t" or mixed) and node.text:
            buffer.append(node.text)
        for item in reversed(list(node)):
            if mixed and item.tail:
                stack.append((item.tail, "text"))
            stack.append((item, "open"))
    flush()
    return out


def parse_docx(source: Source) -> Parsed:
    archive = _open(source.raw, "DOCX")
    deadline = Deadline(TIME_BUDGET_SECONDS, "DOCX file")
    document = _read(archive, "word/document.xml", "DOCX")
    assert document is not None
    root = parse_xml(document, "DOCX document part")
    body = child(root, "body")
    if body is None:
        raise CorruptDocument("the DOCX document part has no body")
    paragraphs = _paragraphs(
        body,
        deadline,
        paragraph={"p"},
        heading=_docx_heading,
        skip={"delText", "instrText", "del", "sectPr", "rPr", "pPr"},
        mixed=False,
    )
    return _document(DOCX, paragraphs, _core(archive, "docProps/core.xml", "DOCX"))


def _docx_heading(paragraph: Any) -> bool:
    properties = child(paragraph, "pPr")
    style = attribute(child(properties, "pStyle"), "val") if properties is not None else None
    return bool(style and _HEADING.fullmatch(style.replace("-", " ")))


def parse_odt(source: Source) -> Parsed:
    archive = _open(source.raw, "ODT")
    manifest = _read(archive, "META-INF/manifest.xml", "ODT", required=False)
    if manifest and b"encryption-data" in manifest:
        raise EncryptedDocument("the ODT file is encrypted (password-protected); seedworker has no password")
    deadline = Deadline(TIME_BUDGET_SECONDS, "ODT file")
    content = _read(archive, "content.xml", "ODT")
    assert content is not None
    root = parse_xml(content, "ODT content part")
    text_root = child(child(root, "body"), "text") if child(root, "body") is not None else None
    if text_root is None:
        raise CorruptDocument("the ODT content part has no office:text body (is it a spreadsheet or slides?)")
    paragraphs = _paragraphs(
        text_root,
        deadline,
        paragraph={"p", "h"},
        heading=lambda el: local_name(el.tag) == "h" and (attribute(el, "outline-level") or "1") == "1",
        skip={"annotation", "note-citation", "tracked-changes", "sequence-decls"},
        mixed=True,
    )
    return _document(ODT, paragraphs, _core(archive, "meta.xml", "ODT"))


def _core(archive: zipfile.ZipFile, name: str, what: str) -> dict[str, str]:
    """title, creator and created from docProps/core.xml (DOCX) or meta.xml (ODT)."""
    data = _read(archive, name, what, required=False)
    if not data:
        return {}
    root = parse_xml(data, f"{what} {name} part")
    meta = child(root, "meta") if local_name(root.tag) == "document-meta" else root
    if meta is None:
        return {}
    found: dict[str, str] = {}
    for element in meta:
        key = local_name(element.tag)
        value = text_of(element)
        if value and key in ("title", "creator", "initial-creator", "created", "creation-date", "language", "subject"):
            found.setdefault(key, value)
    return found


def _document(fmt: str, paragraphs: list[tuple[bool, str]], core: dict[str, str]) -> Parsed:
    body = "\n\n".join(text for _, text in paragraphs)
    if not body.strip():
        raise NoExtractableText(f"the {fmt.upper()} file has no text")
    parsed = Parsed(fmt, body, encoding="binary")
    first_heading = next((text for is_heading, text in paragraphs if is_heading), None)
    parsed.title = as_line(core.get("title")) or as_line(first_heading)
    parsed.author = as_line(core.get("creator") or core.get("initial-creator"))
    parsed.date_raw = core.get("created") or core.get("creation-date")
    parsed.language = core.get("language")
    parsed.metadata = {k: v for k, v in (("subject", core.get("subject")),) if v}
    return parsed


#: What a DOCX or ODT file can fail with: the ZIP container, its XML parts, their text.
ZIP_FAILURES = (
    "corrupt_document",
    "encrypted",
    "invalid_xml",
    "unsafe_xml",
    "no_text_extracted",
    "too_large",
    "too_slow",
)

DOCX_FORMAT = Format(
    name=DOCX,
    label="Word DOCX (`docx`)",
    sniff=sniff_docx,
    parse=parse_docx,
    extensions=(".docx",),
    reads_bytes=True,
    recognised="a ZIP whose first entries name `word/`, whatever the extension; `.docx`",
    fields="paragraphs, headings and table cells in reading order → text; core title, else the first"
    " Title/Heading 1 paragraph → title; creator → author; created → date",
    failures=ZIP_FAILURES,
)
ODT_FORMAT = Format(
    name=ODT,
    label="OpenDocument Text (`odt`)",
    sniff=sniff_odt,
    parse=parse_odt,
    extensions=(".odt",),
    reads_bytes=True,
    recognised="a ZIP whose `mimetype` entry is `application/vnd.oasis.opendocument.text`; `.odt`",
    fields="text:p and text:h in reading order → text; meta title, else the first level-1 heading → title;"
    " creator (or initial-creator) → author; creation-date → date",
    failures=ZIP_FAILURES,
)
