"""Email, PDF, DOCX and ODT: the samples in examples/formats/ and documents built from
their specifications (``tests/support/documents.py``), good and hostile."""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from tests.support import documents
from worker.errors import (
    CorruptDocument,
    EncryptedDocument,
    InputError,
    NoExtractableText,
    SeveralDocuments,
    TooLarge,
    UnsafeXML,
)
from worker.models import NormalisedDocument
from worker.pipeline.normalise import normalise, normalise_records

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "formats"


def _one(raw: bytes, name: str) -> NormalisedDocument | InputError:
    [(record, result)] = normalise_records(raw, filename=name)
    assert record is None
    return result


# --- email ----------------------------------------------------------------------------------


def test_email_subject_sender_date_and_plain_body() -> None:
    records = normalise_records((SAMPLES / "press-release.eml").read_bytes(), filename="press-release.eml")
    assert [r for r, _ in records] == [1, 2]  # the email, then its one readable attachment
    email, attachment = (result for _, result in records)
    assert isinstance(email, NormalisedDocument) and email.format == "email"
    assert email.title == "Press release: harbour lighthouse to reopen"
    assert email.author == "Harbour Authority Press Office"
    assert str(email.date) == "2026-11-24"
    assert email.text.startswith("The old lighthouse at the harbour entrance")  # text/plain, dateline off
    assert email.dateline is not None and email.dateline.place == "Portsmouth"
    assert email.metadata["message_id"] == "<press-2026-11-24-lighthouse@harbour.example.org>"
    assert [(a["filename"], a["read"]) for a in email.metadata["attachments"]] == [
        ("opening-hours.txt", True),
        ("logo.png", False),  # listed, ignored
    ]
    assert isinstance(attachment, NormalisedDocument) and attachment.text.startswith("Opening hours")
    assert attachment.metadata["parent"] == {
        "format": "email",
        "record": 1,
        "message_id": "<press-2026-11-24-lighthouse@harbour.example.org>",
        "subject": "Press release: harbour lighthouse to reopen",
        "filename": "press-release.eml",
    }
    with pytest.raises(SeveralDocuments):
        normalise((SAMPLES / "press-release.eml").read_bytes(), filename="press-release.eml")


def _mail(body: str | None = None, html: str | None = None, **extra: bytes) -> bytes:
    message = EmailMessage()
    message["From"] = "Desk <desk@example.com>"
    message["Subject"] = "Wire copy"
    message["Date"] = "Mon, 23 Nov 2026 08:00:00 +0000"
    message["Message-ID"] = "<a@example.com>"
    if body is not None:
        message.set_content(body)
    if html is not None:
        if body is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    for name, data in extra.items():
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=name.replace("_", "."))
    return message.as_bytes(policy=SMTP)


def test_email_without_attachments_is_one_document_and_html_only_is_read_as_text() -> None:
    doc = _one(
        _mail(html="<html><body><h1>Wire copy</h1><p>The <b>minister</b> resigned on Monday.</p></body></html>"),
        "a.eml",
    )
    assert isinstance(doc, NormalisedDocument) and doc.metadata["body_format"] == "html"
    assert "The minister resigned on Monday." in doc.text and "<b>" not in doc.text


def test_email_is_sniffed_without_its_extension_and_a_header_text_stays_text() -> None:
    doc = _one(_mail(body="The ferry timetable changes on Monday for the winter."), "incoming")
    assert isinstance(doc, NormalisedDocument) and doc.format == "email"
    text = _one(b"Title: Ferry\nDate: 2026-11-24\nAuthor: Jane\n\nThe ferry timetable changes on Monday.", "a.txt")
    assert isinstance(text, NormalisedDocument) and text.format == "header"


def test_email_attachments_in_supported_formats_become_documents_with_their_parent() -> None:
    pdf = documents.pdf([["An attached statement from the harbour authority about the new ferry."]])
    raw = _mail(body="See the attached statement.", statement_pdf=pdf, photo_jpg=b"\xff\xd8\xff" + b"\0" * 50)
    records = normalise_records(raw, filename="mail.eml")
    assert [r for r, _ in records] == [1, 2]
    attached = records[1][1]
    assert isinstance(attached, NormalisedDocument) and attached.format == "pdf"
    assert attached.metadata["parent"]["message_id"] == "<a@example.com>"
    assert attached.metadata["attachment"] == "statement.pdf"


def test_email_with_no_body_fails_no_text_extracted() -> None:
    error = _one(_mail(), "empty.eml")
    assert isinstance(error, NoExtractableText)


def test_email_nested_thousands_of_multiparts_deep_is_refused_quickly() -> None:
    raw = b"From: a@b\nSubject: x\nMessage-ID: <1@b>\nContent-Type: multipart/mixed; boundary=a\n\n" + b"".join(
        b"--a\nContent-Type: multipart/mixed; boundary=a%d\n\n" % i for i in range(2000)
    )
    started = time.process_time()
    assert isinstance(_one(raw, "nested.eml"), TooLarge)
    assert time.process_time() - started < 1.0


@pytest.mark.parametrize(
    "headers",
    [
        b"From: " + b"a@b, " * 100_000 + b"\n",  # a 500 KB address list: 30 s in the stdlib parser uncut
        b"From: a@b\nSubject: " + b"=?utf-8?q?a?= " * 100_000 + b"\n",
        b"From: " + b"(" * 50_000 + b"a@b\n",  # nested comments: a RecursionError uncut
        b"From: a@b\nContent-Type: text/plain; " + b"a=b; " * 100_000 + b"\n",
        b"From: a@b\n" + b"".join(b"X-H%d: v\n" % i for i in range(100_000)),
    ],
    ids=["address-list", "encoded-words", "nested-comments", "parameters", "many-fields"],
)
def test_pathological_email_headers_are_cut_and_read_quickly(headers: bytes) -> None:
    raw = headers + b"Subject: x\nMessage-ID: <1@b>\nDate: Mon, 23 Nov 2026 08:00:00 +0000\n\nThe body of the mail.\n"
    started = time.process_time()
    doc = _one(raw, "slow.eml")
    assert time.process_time() - started < 3.0
    assert isinstance(doc, NormalisedDocument) and doc.text == "The body of the mail."
    assert any(w.startswith("email: 1") or w.startswith("email: 99") for w in doc.warnings), doc.warnings


def test_an_email_of_too_many_parts_is_too_large() -> None:
    parts = b"--zz\nContent-Type: text/plain\n\nx\n" * 300
    raw = (
        b"From: a@b\nSubject: x\nMessage-ID: <1@b>\nContent-Type: multipart/mixed; boundary=zz\n\n"
        + parts
        + b"--zz--\n"
    )
    assert isinstance(_one(raw, "parts.eml"), TooLarge)


# --- PDF ------------------------------------------------------------------------------------


def test_pdf_text_layer_title_author_and_creation_date() -> None:
    doc = _one((SAMPLES / "report.pdf").read_bytes(), "report.pdf")
    assert isinstance(doc, NormalisedDocument) and doc.format == "pdf"
    assert (doc.title, doc.author) == ("Harbour Authority Annual Report", "Harbour Authority Press Office")
    assert doc.date_raw == "2026-11-24T09:30:00+01:00" and str(doc.date) == "2026-11-24"
    assert "ferry crossings" in doc.text and doc.text.endswith("approved by the board.")  # pages in order
    assert doc.metadata["pages"] == 2


def test_scanned_pdf_without_a_text_layer_says_so() -> None:
    error = _one((SAMPLES / "scanned.pdf").read_bytes(), "scan.pdf")
    assert isinstance(error, NoExtractableText) and "no text layer" in error.message and "OCR" in error.message


def test_encrypted_pdf_fails_encrypted() -> None:
    raw = documents.pdf([["Text nobody may read without the password."]], user_password="secret")
    assert isinstance(_one(raw, "locked.pdf"), EncryptedDocument)


def test_an_article_that_quotes_the_pdf_magic_stays_text() -> None:
    doc = _one(b"Archivists said files that begin with %PDF-1.7 can still be read decades later.", "note.txt")
    assert isinstance(doc, NormalisedDocument) and doc.format == "text"


def test_damaged_pdf_fails_corrupt_document_and_is_sniffed_whatever_its_name() -> None:
    assert isinstance(_one(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> broken", "x.txt"), CorruptDocument)
    good = (SAMPLES / "report.pdf").read_bytes()
    doc = _one(good, "report.txt")
    assert isinstance(doc, NormalisedDocument) and doc.format == "pdf"


# --- DOCX / ODT -----------------------------------------------------------------------------


def test_docx_paragraphs_in_order_title_heading_author_and_created() -> None:
    doc = _one((SAMPLES / "report.docx").read_bytes(), "report.docx")
    assert isinstance(doc, NormalisedDocument) and doc.format == "docx"
    assert doc.title == "City approves new tram line"  # no core title: the Title paragraph
    assert (doc.author, doc.date_raw) == ("Jane Doe", "2026-11-24T09:30:00Z")
    assert doc.text.split("\n\n") == [
        "City approves new tram line",
        "The city council on Wednesday approved a new tram line linking the station with the university, after"
        " years of delays.",
        "What happens next",
        "Building work starts in the summer and the first trams should run within three years.",
    ]  # runs joined without a space, dateline taken off under the headline
    assert doc.dateline is not None and doc.dateline.raw == "LEEDS (AP) —"


def test_odt_paragraphs_headings_spans_and_meta() -> None:
    doc = _one((SAMPLES / "report.odt").read_bytes(), "report.odt")
    assert isinstance(doc, NormalisedDocument) and doc.format == "odt"
    assert (doc.title, doc.author, str(doc.date)) == ("Orchestra returns to the market hall", "Sam Reyes", "2026-11-23")
    assert (
        doc.text.split("\n\n")[1]
        == "The city orchestra played its first concert in the restored market hall on Saturday night."
    )


def test_zip_bomb_inside_a_docx_is_refused_before_it_is_inflated() -> None:
    error = _one(documents.docx_zip_bomb(), "bomb.docx")
    assert isinstance(error, TooLarge) and "zip bomb" in error.message


def test_encrypted_office_files_fail_encrypted() -> None:
    assert isinstance(
        _one(documents.odt([(None, "Secret minutes of the board.")], encrypted=True), "x.odt"), EncryptedDocument
    )
    cfb = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600  # how Office stores an encrypted .docx
    assert isinstance(_one(cfb, "locked.docx"), EncryptedDocument)


def test_docx_with_an_entity_bomb_or_a_broken_zip() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r>'
        b"<w:t>&b;</w:t></w:r></w:p></w:body></w:document>"
    )
    assert isinstance(_one(documents.docx([], document_xml=bomb), "bomb.docx"), UnsafeXML)
    assert isinstance(_one(b"PK\x03\x04 this is not really a zip", "broken.docx"), CorruptDocument)
