"""Bytes to text: every encoding the stage promises, and every way bytes are refused."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from worker.errors import BinaryContent, EmptyDocument, UndecodableText
from worker.pipeline.decode import decode
from worker.pipeline.normalise import normalise

ARTICLE = "It’s a “test” — the café served crème brûlée in Zürich, naïvely."


def _write(tmp_path: Path, name: str, data: bytes) -> bytes:
    """Round-trip through a real file, the way the watcher reads inputs."""
    path = tmp_path / name
    path.write_bytes(data)
    return path.read_bytes()


def test_plain_utf8_is_read_as_utf8(tmp_path: Path) -> None:
    decoded = decode(_write(tmp_path, "a.txt", ARTICLE.encode("utf-8")))
    assert (decoded.text, decoded.encoding) == (ARTICLE, "utf-8")


def test_utf8_byte_order_mark_is_dropped_and_recorded(tmp_path: Path) -> None:
    decoded = decode(_write(tmp_path, "a.txt", codecs.BOM_UTF8 + ARTICLE.encode("utf-8")))
    assert decoded.text == ARTICLE
    assert decoded.encoding == "utf-8-sig"


@pytest.mark.parametrize(
    ("bom", "codec", "label"),
    [
        (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le", "utf-32-le"),
    ],
)
def test_utf16_and_utf32_with_a_byte_order_mark_decode(tmp_path: Path, bom: bytes, codec: str, label: str) -> None:
    decoded = decode(_write(tmp_path, "a.txt", bom + ARTICLE.encode(codec)))
    assert (decoded.text, decoded.encoding) == (ARTICLE, label)


def test_python_utf16_codec_output_with_its_own_bom_decodes(tmp_path: Path) -> None:
    doc = normalise(_write(tmp_path, "a.txt", ARTICLE.encode("utf-16")), filename="a.txt")
    assert doc.text == ARTICLE
    assert doc.encoding.startswith("utf-16")


def test_windows_1252_curly_quotes_and_accents_are_detected(tmp_path: Path) -> None:
    decoded = decode(_write(tmp_path, "a.txt", ARTICLE.encode("cp1252")))
    assert decoded.encoding == "windows-1252"
    assert decoded.text == ARTICLE


@pytest.mark.parametrize(
    "text",
    [
        "Café crème",
        "Grüße aus München, schöne Straße.",
        "El niño comió piñata en Bogotá",
        "Le café est très bon et la crème brûlée aussi. " * 20,
    ],
)
def test_latin1_text_reads_back_exactly(tmp_path: Path, text: str) -> None:
    decoded = decode(_write(tmp_path, "a.txt", text.encode("latin-1")))
    assert decoded.text == text
    assert decoded.encoding == "windows-1252"  # Latin-1's letters sit at the same bytes


def test_latin1_file_becomes_a_document_with_its_encoding(tmp_path: Path) -> None:
    raw = _write(tmp_path, "a.txt", "Ceci est un texte en français, écrit à Paris.".encode("latin-1"))
    doc = normalise(raw, filename="a.txt")
    assert doc.text == "Ceci est un texte en français, écrit à Paris."
    assert doc.encoding == "windows-1252"
    assert doc.language == "fr"


def test_windows_1251_cyrillic_is_not_mistaken_for_windows_1252(tmp_path: Path) -> None:
    text = "Привет, как дела у тебя сегодня? Всё хорошо, спасибо."
    decoded = decode(_write(tmp_path, "a.txt", text.encode("cp1251")))
    assert decoded.text == text
    assert decoded.encoding == "windows-1251"


def test_utf8_text_with_one_stray_latin1_byte_is_still_read(tmp_path: Path) -> None:
    raw = _write(tmp_path, "a.txt", b"hello world " * 1000 + "café".encode("latin-1"))
    decoded = decode(raw)
    assert decoded.text.endswith("café")


def test_mojibake_is_repaired_and_curly_quotes_are_kept(tmp_path: Path) -> None:
    broken = "Itâ€™s â€œfineâ€\x9d in ZÃ¼rich"  # UTF-8 once read as Windows-1252/Latin-1
    doc = normalise(_write(tmp_path, "a.txt", broken.encode("utf-8")), filename="a.txt")
    assert doc.text == "It’s “fine” in Zürich"


def test_empty_file_is_an_empty_document(tmp_path: Path) -> None:
    with pytest.raises(EmptyDocument, match="empty") as info:
        decode(_write(tmp_path, "a.txt", b""))
    assert info.value.reason == "empty"


@pytest.mark.parametrize(
    "raw", [b" \n\t\r\n  ", codecs.BOM_UTF8 + b"  \n", codecs.BOM_UTF16_LE + " \n".encode("utf-16-le")]
)
def test_whitespace_only_is_an_empty_document(tmp_path: Path, raw: bytes) -> None:
    with pytest.raises(EmptyDocument):
        decode(_write(tmp_path, "a.txt", raw))


def test_nul_bytes_are_binary_and_the_message_gives_the_offset(tmp_path: Path) -> None:
    raw = _write(tmp_path, "a.txt", b"hello world\x00\x01\x02")
    with pytest.raises(BinaryContent) as info:
        decode(raw)
    assert info.value.reason == "binary"
    assert "offset 11" in info.value.message
    assert info.value.details == {"offset": 11}


def test_a_pdf_is_named_in_the_binary_message(tmp_path: Path) -> None:
    with pytest.raises(BinaryContent, match="PDF"):
        decode(_write(tmp_path, "a.txt", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\x00"))


def test_utf16_without_a_byte_order_mark_is_refused_as_binary(tmp_path: Path) -> None:
    with pytest.raises(BinaryContent, match="byte-order mark"):
        decode(_write(tmp_path, "a.txt", "plain words".encode("utf-16-le")))


def test_mostly_control_characters_are_binary(tmp_path: Path) -> None:
    with pytest.raises(BinaryContent, match="control characters"):
        decode(_write(tmp_path, "a.txt", b"\x01\x02\x03\x04 text \x05\x06\x07\x08"))


@pytest.mark.parametrize("control", ["\x01", "\x0e", "\x1f", "\x7f", "\x85", "\x9f"])
def test_the_binary_bound_is_one_control_character_in_ten(tmp_path: Path, control: str) -> None:
    # 100 characters: 10 controls pass, 11 do not (C0 except whitespace, DEL, C1 all count).
    at_bound = control * 10 + "x" * 90
    decode(_write(tmp_path, "a.txt", at_bound.encode("utf-8")))
    with pytest.raises(BinaryContent, match="11% of the first 100 characters"):
        decode(_write(tmp_path, "b.txt", (control * 11 + "x" * 89).encode("utf-8")))


def test_whitespace_controls_never_make_a_text_binary(tmp_path: Path) -> None:
    text = "\t\n\x0b\x0c\r" * 40 + "words"
    assert decode(_write(tmp_path, "a.txt", text.encode("utf-8"))).text == text


def test_bytes_no_encoding_fits_are_undecodable(tmp_path: Path) -> None:
    with pytest.raises(UndecodableText) as info:
        decode(_write(tmp_path, "a.txt", bytes(range(0x80, 0x100)) * 3))
    assert info.value.reason == "undecodable"


def test_truncated_utf16_is_undecodable(tmp_path: Path) -> None:
    raw = codecs.BOM_UTF16_LE + "odd".encode("utf-16-le") + b"x"
    with pytest.raises(UndecodableText, match="utf-16-le"):
        decode(_write(tmp_path, "a.txt", raw))


def test_utf8_file_with_a_pasted_windows_1252_paragraph_reads_both(tmp_path: Path) -> None:
    raw = _write(
        tmp_path,
        "mixed.txt",
        "First part, saved as UTF-8: café, naïve, “quotes”.\n\n".encode()
        + "Second part, saved as Windows-1252: café, naïve, “quotes”.".encode("cp1252"),
    )
    decoded = decode(raw)
    assert decoded.text == (
        "First part, saved as UTF-8: café, naïve, “quotes”.\n\n"
        "Second part, saved as Windows-1252: café, naïve, “quotes”."
    )
    assert decoded.encoding == "utf-8"
    assert decoded.warnings and "read as Windows-1252" in decoded.warnings[0]


def test_legacy_text_that_happens_to_hold_one_utf8_pair_is_still_read_as_legacy(tmp_path: Path) -> None:
    text = "Сі Привіт, як справи? Це текст українською мовою для перевірки кодування."
    decoded = decode(_write(tmp_path, "uk.txt", text.encode("cp1251")))
    assert decoded.text == text and decoded.encoding == "windows-1251"
