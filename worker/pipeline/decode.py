"""Bytes to text: byte-order marks, UTF-8, a guessed legacy encoding, and binary detection.

Producers send whatever their editor saved.  UTF-8 is tried first because it almost never
decodes by accident; only bytes that are not UTF-8 are handed to charset-normalizer, and
Windows-1252 wins whenever it reads no worse than the guess, because short Western texts
are where the detector is weakest.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from charset_normalizer import from_bytes

from worker.errors import BinaryContent, EmptyDocument, UndecodableText

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SAMPLE_BYTES = 64 * 1024
_CONTROL_SAMPLE = 64 * 1024
_MAX_CONTROL_RATIO = 0.10
# C0 controls except the whitespace ones (\t \n \v \f \r), DEL and the C1 controls.
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_MAX_MIXED_RATIO = 4  # invalid sequences per valid non-ASCII UTF-8 character, at most
_LABELS = {
    "cp1250": "windows-1250",
    "cp1251": "windows-1251",
    "cp1252": "windows-1252",
    "cp1253": "windows-1253",
    "cp1254": "windows-1254",
    "cp1255": "windows-1255",
    "cp1256": "windows-1256",
    "cp1257": "windows-1257",
    "cp1258": "windows-1258",
    "latin_1": "iso-8859-1",
    "iso8859-1": "iso-8859-1",
}
_MAGIC = (
    (b"%PDF-", "a PDF"),
    (b"\x89PNG", "a PNG image"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xff\xd8\xff", "a JPEG image"),
)


@dataclass(frozen=True)
class Decoded:
    """Decoded text, the encoding it was read with, and anything worth telling the user."""

    text: str
    encoding: str
    warnings: tuple[str, ...] = ()


def decode(raw: bytes) -> Decoded:
    """Decode one file, or raise EmptyDocument, BinaryContent or UndecodableText."""
    if not raw.strip():
        what = "is empty" if not raw else "holds only whitespace"
        raise EmptyDocument(f"the file {what}: there is no text to ingest", size=len(raw))
    decoded = _decode_bom(raw) or _decode_plain(raw)
    if not decoded.text.strip():
        raise EmptyDocument("the file holds only a byte-order mark and whitespace")
    _reject_control_heavy(decoded.text)
    return decoded


def _decode_bom(raw: bytes) -> Decoded | None:
    """Text that starts with a byte-order mark says its own encoding; trust it."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                text = raw[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise UndecodableText(
                    f"the file starts with a {encoding} byte-order mark but byte {exc.start + len(bom)}"
                    f" is not valid {encoding}: {exc.reason}",
                    encoding=encoding,
                    offset=exc.start + len(bom),
                ) from None
            label = "utf-8-sig" if encoding == "utf-8" else encoding
            return Decoded(text, label)
    return None


def _decode_plain(raw: bytes) -> Decoded:
    """No byte-order mark: refuse binary, then UTF-8, then the best legacy encoding."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        kind = _magic_name(raw)
        looks = f"it looks like {kind}" if kind else "it looks binary, not text"
        raise BinaryContent(
            f"the file holds NUL bytes at offset {nul}: {looks} (UTF-16 text needs a byte-order mark)",
            offset=nul,
        )
    try:
        return Decoded(raw.decode("utf-8"), "utf-8")
    except UnicodeDecodeError as exc:
        return _decode_mixed(raw, exc.start) or _decode_legacy(raw, exc.start)


def _decode_mixed(raw: bytes, first_bad: int) -> Decoded | None:
    """UTF-8 with stray legacy bytes (files pasted together from several exports).

    Valid multi-byte UTF-8 sequences almost never occur by accident in legacy-encoded text,
    so a file that holds some, and whose invalid bytes are few, is UTF-8: the invalid bytes
    are read as Windows-1252 (Latin-1 where 1252 leaves a byte undefined), with a warning.
    """
    text = raw.decode("utf-8", "replace")
    bad = text.count("\ufffd") - raw.count("\ufffd".encode())
    multibyte = sum(1 for ch in text if ch > "\x7f" and ch != "\ufffd")
    if not multibyte or bad > _MAX_MIXED_RATIO * multibyte:
        return None
    text = raw.decode("utf-8", _LEGACY_FALLBACK)
    warning = (
        f"encoding: UTF-8, but {bad} byte sequence(s) were not (the first at byte {first_bad})"
        " and were read as Windows-1252"
    )
    return Decoded(text, "utf-8", (warning,))


def _legacy_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: undecodable bytes read as Windows-1252, else Latin-1."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    chunk = exc.object[exc.start : exc.end]
    return "".join(_cp1252_or_latin1(byte) for byte in chunk), exc.end


def _cp1252_or_latin1(byte: int) -> str:
    try:
        return bytes((byte,)).decode("cp1252")
    except UnicodeDecodeError:
        return chr(byte)


_LEGACY_FALLBACK = "seedworker-cp1252-fallback"
codecs.register_error(_LEGACY_FALLBACK, _legacy_fallback)


def _magic_name(raw: bytes) -> str | None:
    return next((name for magic, name in _MAGIC if raw.startswith(magic)), None)


def _decode_legacy(raw: bytes, first_bad: int) -> Decoded:
    """Guess a legacy encoding from a sample around the first non-UTF-8 byte."""
    encoding = _guess_encoding(_sample(raw, first_bad))
    if encoding is None:
        kind = _magic_name(raw)
        if kind:
            raise BinaryContent(f"the file looks like {kind}, not text")
        raise UndecodableText(
            f"byte {first_bad} is not UTF-8 and no other text encoding fits the file",
            offset=first_bad,
        )
    label = _LABELS.get(encoding, codecs.lookup(encoding).name)
    try:
        return Decoded(raw.decode(encoding), label)
    except UnicodeDecodeError as exc:
        text = raw.decode(encoding, errors="replace")
        warning = (
            f"encoding: read as {label}, but byte {exc.start} and possibly others do not"
            " exist in it and were replaced with U+FFFD"
        )
        return Decoded(text, label, (warning,))


def _sample(raw: bytes, first_bad: int) -> bytes:
    """At most 64 KiB including the first bad byte, cut at a line end where possible."""
    if first_bad < _SAMPLE_BYTES // 2:
        sample = raw[:_SAMPLE_BYTES]
    else:
        start = raw.rfind(b"\n", 0, first_bad) + 1
        sample = raw[start : start + _SAMPLE_BYTES]
    if len(sample) == _SAMPLE_BYTES:
        end = sample.rfind(b"\n")
        if end > _SAMPLE_BYTES // 2:
            sample = sample[: end + 1]
    return sample


def _guess_encoding(sample: bytes) -> str | None:
    """charset-normalizer's guess, unless Windows-1252 reads at least as cleanly."""
    best = from_bytes(sample).best()
    western = from_bytes(sample, cp_isolation=["cp1252"]).best()
    if western is not None and (best is None or western.chaos <= best.chaos):
        return "cp1252"
    return best.encoding if best is not None else None


def _reject_control_heavy(text: str) -> None:
    """Binary that happened to decode is mostly control characters; refuse it."""
    sample = text[:_CONTROL_SAMPLE]
    controls = len(_CONTROLS.findall(sample))
    if controls and controls / len(sample) > _MAX_CONTROL_RATIO:
        share = round(100 * controls / len(sample))
        raise BinaryContent(
            f"the file looks binary, not text: {share}% of the first {len(sample)} characters are control characters",
            control_ratio=round(controls / len(sample), 3),
        )
