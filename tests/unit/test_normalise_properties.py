"""Properties of the normalise stage over arbitrary input (hypothesis).

Whatever bytes arrive, the stage answers with a valid document or an InputError, never
another exception; and a document's own text normalises back to itself.
"""

from __future__ import annotations

import codecs
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.errors import InputError
from worker.models import NormalisedDocument
from worker.pipeline.normalise import canonical_hash, normalise, normalise_records
from worker.pipeline.textclean import clean_text, count_words

FILENAMES = ["doc.txt", "doc.json", "doc.jsonl", "doc.html", "doc.md", ""]
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that looks like what producers send: words, punctuation, wire furniture, odd spaces.
WORDS = st.sampled_from(
    [
        "Kyiv",
        "WASHINGTON",
        "(AP)",
        "—",
        "--",
        "By",
        "Title:",
        "date",
        "2024-02-06",
        "café",
        "“quoted”",
        "it’s",
        "naïve",
        "\u00a0",
        "\t",
        "\r\n",
        "\n\n\n",
        "---",
        "+++",
        "#",
        "{",
        "<p>",
        "\u200b",
        "Ã©",
        "日本語",
        "Привет",
    ]
)
LOOKALIKE_TEXT = st.lists(st.one_of(WORDS, st.text(max_size=8)), max_size=40).map(" ".join)


def _outcome(raw: bytes, filename: str) -> NormalisedDocument | InputError:
    try:
        return normalise(raw, filename=filename)
    except InputError as error:
        return error


@PROPERTY
@given(raw=st.binary(max_size=2000), filename=st.sampled_from(FILENAMES))
def test_arbitrary_bytes_give_a_document_or_an_input_error(raw: bytes, filename: str) -> None:
    result = _outcome(raw, filename)
    if isinstance(result, NormalisedDocument):
        NormalisedDocument.model_validate(result.model_dump(mode="json"))
        assert result.text and result.text == result.text.strip()


@PROPERTY
@given(text=st.one_of(st.text(), LOOKALIKE_TEXT), filename=st.sampled_from(FILENAMES))
def test_arbitrary_text_gives_a_document_or_an_input_error(text: str, filename: str) -> None:
    result = _outcome(text.encode("utf-8"), filename)
    if isinstance(result, NormalisedDocument):
        assert result.canonical_hash == canonical_hash(result.text)
        # the count is that of the document's own text, and zero exactly when it has no word character
        assert result.word_count == count_words(result.text)
        assert (result.word_count == 0) == (re.search(r"\w", result.text) is None)


@PROPERTY
@given(raw=st.binary(max_size=2000), filename=st.sampled_from(FILENAMES))
def test_normalise_records_never_raises(raw: bytes, filename: str) -> None:
    records = normalise_records(raw, filename=filename)
    assert records
    for record, result in records:
        assert isinstance(result, NormalisedDocument | InputError)
        assert record is None or record >= 1


@PROPERTY
@given(text=st.one_of(st.text(min_size=1), LOOKALIKE_TEXT))
def test_normalising_a_documents_own_text_changes_nothing(text: str) -> None:
    first = _outcome(text.encode("utf-8"), "doc.txt")
    if isinstance(first, InputError):
        return
    second = normalise(first.text.encode("utf-8"), filename="doc.txt")
    assert second.text == first.text
    assert second.canonical_hash == first.canonical_hash


@PROPERTY
@given(text=st.one_of(st.text(min_size=1), LOOKALIKE_TEXT))
def test_normalise_is_deterministic(text: str) -> None:
    raw = text.encode("utf-8")
    first, second = _outcome(raw, "doc.txt"), _outcome(raw, "doc.txt")
    if isinstance(first, InputError):
        assert type(second) is type(first) and second.message == first.message
    else:
        assert first == second


@PROPERTY
@given(text=st.one_of(st.text(min_size=1), LOOKALIKE_TEXT))
def test_utf16_and_crlf_copies_hash_like_the_utf8_original(text: str) -> None:
    original = _outcome(text.encode("utf-8"), "doc.txt")
    if isinstance(original, InputError):
        return
    utf16 = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    crlf = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    for copy in (utf16, crlf):
        assert normalise(copy, filename="doc.txt").canonical_hash == original.canonical_hash


@PROPERTY
@given(text=st.text())
def test_clean_text_is_idempotent(text: str) -> None:
    once = clean_text(text)
    assert clean_text(once) == once


BIG_LINE = b"WASHINGTON (AP) " + b"word \xe2\x80\x94 " * 5_000_000  # 50 MB, no newline


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("filename", "raw"),
    [
        ("doc.txt", BIG_LINE),
        ("doc.json", b'{"title": "big", "text": "' + BIG_LINE + b'"}'),
        ("doc.md", b"---\ntitle: big\n---\n" + BIG_LINE[:5_000_000]),
        ("doc.html", b"<html><body><p>" + BIG_LINE[:5_000_000] + b"</p></body></html>"),
        ("doc.jsonl", (b'{"text": "' + BIG_LINE[:5_000_000] + b'"}\n') * 2),
    ],
    ids=["txt-50MB", "json-50MB", "md-5MB", "html-5MB", "jsonl-10MB"],
)
def test_huge_single_lines_are_handled_without_blowing_up(filename: str, raw: bytes) -> None:
    records = normalise_records(raw, filename=filename)
    assert all(isinstance(result, NormalisedDocument) for _, result in records)


# -- cheaper forms of clean_text and canonical_text give the same text (issue 21) ---------------


def _clean_text_before(text: str) -> str:
    """clean_text as it was until 3 Dec 2026: always two repair-and-tidy passes."""
    import unicodedata

    from worker.pipeline import textclean

    if not text.isascii():
        text = textclean._tidy(textclean._repair(text))
        text = unicodedata.normalize("NFC", textclean._tidy(textclean._repair(text)))
    else:
        text = textclean._tidy(text)
    if " \n" in text:
        text = textclean._TRAILING_SPACES.sub("\n", text)
    return textclean._BLANK_RUNS.sub("\n\n", text).strip()


def _canonical_text_before(text: str) -> str:
    """canonical_text as it was until 3 Dec 2026: whitespace runs by regex."""
    import re
    import unicodedata

    from worker.pipeline import textclean

    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = unicodedata.normalize("NFKC", folded)
    folded = textclean._FOLDABLE.sub(lambda m: textclean._FOLDS[m[0]], folded)
    return re.sub(r"\s{2,}|[^\S ]", " ", folded).strip()


_MESSY = st.text(
    alphabet=st.sampled_from(
        list("ab é\n\t\r\x85\u2028\u00a0\u200b\u3000’“—Ã©â€™\x80\x9d\u0301 ")
        # every character canonical_text folds (quotes, dashes, invisible ones)
        + list("‘’‚‛′“”„‟″‐‑‒–—―−\u200b\ufeff\u2060\xad\u180e")
    ),
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_MESSY, st.text(max_size=200)))
def test_clean_and_canonical_text_as_before(text: str) -> None:
    from worker.pipeline.textclean import canonical_text

    assert clean_text(text) == _clean_text_before(text)
    assert canonical_text(text) == _canonical_text_before(text)
