"""Which format a file is in: the one table of formats, and the rule that picks one.

Every format is one module with one ``Format`` entry (``sniff`` + ``parse``); ``FORMATS``
lists them, and ``docs/formats.md``'s table of formats is checked against it.  The rule:

1. content that says what it is (``CERTAIN``: a PDF's magic bytes, a NewsML-G2 root) wins;
2. then the file name's extension;
3. then content that only looks like a format (``LIKELY``: ``<html`` in a .txt);
4. otherwise plain text.

Formats that read bytes (PDF, Office, email) are sniffed before the file is decoded as
text; the others after, on the decoded text.
"""

from __future__ import annotations

from worker.pipeline.formats import email, feed, htmldoc, jsondoc, markdown, newsml, ninjs, office, pdf, text
from worker.pipeline.formats.base import CERTAIN, LIKELY, Format, Head

__all__ = ["FORMATS", "Format", "by_name", "can_read", "choose_bytes", "choose_text", "detect_format"]

#: Every format, in the order sniffing asks them.  The fallback (plain text) is last.
FORMATS: tuple[Format, ...] = (
    pdf.FORMAT,
    office.DOCX_FORMAT,
    office.ODT_FORMAT,
    newsml.FORMAT,
    feed.FORMAT,
    email.FORMAT,
    ninjs.FORMAT,
    jsondoc.JSON_FORMAT,
    jsondoc.JSONL_FORMAT,
    htmldoc.FORMAT,
    markdown.FORMAT,
    text.FORMAT,
)
FALLBACK = text.FORMAT
_BY_EXTENSION = {ext: fmt for fmt in FORMATS for ext in fmt.extensions}
_BY_NAME = {fmt.name: fmt for fmt in FORMATS}
_HEAD_BYTES = 64 * 1024


def by_name(name: str) -> Format:
    return _BY_NAME[name]


def suffix_of(filename: str) -> str:
    """``PurePath(filename).suffix`` (POSIX paths) without building a path: the last part
    that is neither empty nor ``.``, from its last dot when that is neither its first nor its
    last character; pathlib cost ~10 us a call, twice per file (tests/unit/test_formats.py)."""
    name = next((part for part in reversed(filename.split("/")) if part and part != "."), "")
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def _extension(filename: str) -> Format | None:
    return _BY_EXTENSION.get(suffix_of(filename).lower())


def choose_bytes(raw: bytes, filename: str) -> Format | None:
    """A format that reads bytes, if the content or the extension names one; else None
    (the file is decoded as text and ``choose_text`` decides)."""
    head = Head(raw[:_HEAD_BYTES], filename)
    for fmt in FORMATS:
        if fmt.reads_bytes and fmt.sniff(head) >= CERTAIN:
            return fmt
    by_extension = _extension(filename)
    return by_extension if by_extension is not None and by_extension.reads_bytes else None


def choose_text(raw: bytes, filename: str, text: str) -> Format:
    """The format of a decoded file: certain content, then extension, then likely content."""
    head = Head(raw[:_HEAD_BYTES], filename, text[:_HEAD_BYTES])
    text_formats = [fmt for fmt in FORMATS if not fmt.reads_bytes]
    scores = [(fmt.sniff(head), fmt) for fmt in text_formats]
    for score, fmt in scores:
        if score >= CERTAIN:
            return fmt
    by_extension = _extension(filename)
    if by_extension is not None and not by_extension.reads_bytes:
        return by_extension
    for score, fmt in scores:
        if score >= LIKELY:
            return fmt
    return FALLBACK


def can_read(raw: bytes, filename: str) -> bool:
    """Whether a file inside a file (an email attachment) is one seedworker reads: a format
    recognised from its bytes or its extension, or a ``.txt``; images and the like are not."""
    if choose_bytes(raw, filename) is not None:
        return True
    suffix = suffix_of(filename).lower()
    return suffix in _BY_EXTENSION or suffix in (".txt", ".text")


def detect_format(filename: str, text: str) -> str:
    """The name of the format a text with this file name is read as (as UTF-8 bytes)."""
    raw = text[:_HEAD_BYTES].encode("utf-8", "surrogatepass")
    by_bytes = choose_bytes(raw, filename)
    return by_bytes.name if by_bytes is not None else choose_text(raw, filename, text).name


def table() -> str:
    """The Markdown table of formats in ``docs/formats.md`` (a test keeps the two equal;
    regenerate with ``python -m worker.pipeline.formats``)."""
    rows = ["| format | recognised by | fields | failure reasons |", "| --- | --- | --- | --- |"]
    for fmt in FORMATS:
        failures = ", ".join(f"`{reason}`" for reason in fmt.failures)
        rows.append(f"| {fmt.label} | {fmt.recognised} | {fmt.fields} | {failures} |")
    return "\n".join(rows) + "\n"
