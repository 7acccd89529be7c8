"""PDF: the text layer, page by page, read with pypdfium2 (PDFium in a wheel, no system
libraries; imported only when a PDF arrives).  A scanned PDF has no text layer and fails as
``no_text_extracted`` (OCR is not done).  Budgets: at most ``MAX_PAGES`` pages and
``TIME_BUDGET_SECONDS`` checked between pages (PDFium cannot be interrupted inside a page).
"""

from __future__ import annotations

import re

from worker.errors import CorruptDocument, EncryptedDocument, NoExtractableText, TooLarge
from worker.pipeline.formats.base import CERTAIN, NO, Deadline, Format, Head, Parsed, Source, as_line

PDF = "pdf"
MAX_PAGES = 2000
MAX_CHARS = 20_000_000
TIME_BUDGET_SECONDS = 60.0
_PDF_DATE = re.compile(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(Z|[+-]\d{2}'?\d{2}'?)?")


def sniff(head: Head) -> float:
    """``%PDF-`` at the start; one further down the first kilobyte (readers tolerate junk
    before it) counts only in a binary head, so an article that quotes "%PDF-" stays text."""
    if head.raw.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"%PDF-"):
        return CERTAIN
    return CERTAIN if b"%PDF-" in head.raw[:1024] and b"\0" in head.raw[: head.raw.find(b"%PDF-")] else NO


def parse(source: Source) -> Parsed:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        document = pdfium.PdfDocument(source.raw)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise EncryptedDocument("the PDF is password-protected; seedworker has no password to open it") from None
        raise CorruptDocument(f"the PDF cannot be opened: {exc}") from None
    try:
        pages = len(document)
        if pages > MAX_PAGES:
            raise TooLarge(f"the PDF has {pages} pages, more than the {MAX_PAGES} read from one file", limit=MAX_PAGES)
        deadline = Deadline(TIME_BUDGET_SECONDS, "PDF")
        texts: list[str] = []
        chars = 0
        for index in range(pages):
            deadline.check()
            page = document[index]
            try:
                textpage = page.get_textpage()
                try:
                    text = textpage.get_text_range()
                finally:
                    textpage.close()
            finally:
                page.close()
            chars += len(text)
            if chars > MAX_CHARS:
                raise TooLarge(f"the PDF's text is over {MAX_CHARS} characters", limit=MAX_CHARS)
            texts.append(text.strip())
        info = document.get_metadata_dict(skip_empty=True)
    except pdfium.PdfiumError as exc:
        raise CorruptDocument(f"the PDF cannot be read: {exc}") from None
    finally:
        document.close()
    body = "\n\n".join(t for t in texts if t)
    if not body.strip():
        raise NoExtractableText(
            f"the PDF has no text layer ({pages} page(s) of images only, e.g. a scan); OCR is not done", pages=pages
        )
    parsed = Parsed(PDF, body, encoding="binary")
    parsed.title = as_line(info.get("Title"))
    parsed.author = as_line(info.get("Author"))
    parsed.date_raw = _pdf_date(info.get("CreationDate"))
    parsed.metadata = {"pages": pages}
    for key, name in (("Subject", "subject"), ("Keywords", "keywords"), ("Producer", "producer")):
        if value := as_line(info.get(key)):
            parsed.metadata[name] = value
    return parsed


def _pdf_date(value: str | None) -> str | None:
    """``D:20261124093000+01'00'`` -> ``2026-11-24T09:30:00+01:00``."""
    match = _PDF_DATE.match(value or "")
    if match is None:
        return as_line(value)
    year, month, day, hour, minute, second, zone = match.groups()
    date = f"{year}-{month or '01'}-{day or '01'}"
    if hour is None:
        return date
    zone = "" if zone is None else ("+00:00" if zone == "Z" else f"{zone[:3]}:{zone.replace(chr(39), '')[3:5]}")
    return f"{date}T{hour}:{minute or '00'}:{second or '00'}{zone}"


FORMAT = Format(
    name=PDF,
    label="PDF (`pdf`)",
    sniff=sniff,
    parse=parse,
    extensions=(".pdf",),
    reads_bytes=True,
    recognised="`%PDF-` at the start (or after binary junk), whatever the extension; `.pdf`",
    fields="the text layer, page by page, in content order → text; document info Title → title, Author → author,"
    " CreationDate → date; pages, Subject, Keywords, Producer → metadata",
    failures=("no_text_extracted", "encrypted", "corrupt_document", "too_large", "too_slow"),
)
