"""Clean display text and the canonical form it is hashed in.

``clean_text`` gives the text people read: mojibake repaired, NFC, no control characters,
one kind of space and line ending, at most one blank line in a row.  ``canonical_text``
folds further (case, quotes, dashes, compatibility forms, every whitespace run) so that
copies of one article that differ only in encoding or typography hash the same.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import ftfy

# Display text keeps curly quotes, HTML entities, ligatures and full-width CJK punctuation as
# written; ftfy only repairs what is broken (mojibake, C1 controls, surrogate pairs).
_FTFY = ftfy.TextFixerConfig(
    unescape_html=False,
    uncurl_quotes=False,
    fix_character_width=False,
    fix_latin_ligatures=False,
    normalization="NFC",
    explain=False,
)


def _decoded(first: int, last: int, *encodings: str) -> str:
    return "".join(sorted({ch for enc in encodings for ch in bytes(range(first, last + 1)).decode(enc, "ignore")}))


# Mojibake of UTF-8 read as Windows-1252, Latin-1 or Windows-1251 always shows a lead-byte
# character followed by a continuation-byte character ("Ã©", "â€™", "Ð¿").  ftfy is slow
# (~0.3 s/MB of non-ASCII text), so it only runs on texts where such a pair occurs.
_MOJIBAKE_HINT = re.compile(
    f"[{re.escape(_decoded(0xC2, 0xF4, 'cp1252', 'cp1251'))}]"
    f"[{re.escape(_decoded(0x80, 0xBF, 'cp1252', 'latin-1', 'cp1251'))}]"
)

# One pass over the text: line breaks to \n, odd spaces (tab, no-break, em, ideographic...)
# to a space, and out with C0/C1 controls, lone surrogates and invisible characters (zero-
# width space, BOM, word joiner, soft hyphen).  ZWJ/ZWNJ stay: scripts and emoji need them.
_INVISIBLE = "\u200b\ufeff\u2060\xad\u180e"
_REPLACEMENTS = {
    "\r\n": "\n",
    **dict.fromkeys("\r\x85\u2028\u2029\x0b\x0c", "\n"),
    **dict.fromkeys(
        "\t\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000", " "
    ),
}
_ODD = re.compile(
    "\r\n|[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u2060\u3000\ufeff\xad\u180e]"
)
_TRAILING_SPACES = re.compile(r" +\n")
_BLANK_RUNS = re.compile(r"\n{3,}")
_WHITESPACE = re.compile(r"\s+")
_ODD_WHITESPACE = re.compile(r"\s{2,}|[^\S ]")  # anything but a lone plain space

_FOLDS = {
    **dict.fromkeys("‘’‚‛′", "'"),
    **dict.fromkeys("“”„‟″", '"'),
    **dict.fromkeys("‐‑‒–—―−", "-"),
    **dict.fromkeys(_INVISIBLE, ""),
}
_FOLDABLE = re.compile(f"[{re.escape(''.join(_FOLDS))}]")
_FOLD_ITEMS = tuple(_FOLDS.items())
_WORD = re.compile(r"\w+(?:['’.-]\w+)*")
_CHUNK = 1 << 20


def _tidy(text: str) -> str:
    """Line endings, odd spaces and control characters, without touching anything else."""
    return _ODD.sub(lambda m: _REPLACEMENTS.get(m[0], ""), text)


def tidy(text: str) -> str:
    """Line endings and odd spaces made plain, control characters and lone surrogates removed;
    nothing else touched.  For values kept as given (metadata), so that every string the
    store and the events carry is valid UTF-8 without NUL (PostgreSQL text columns refuse
    NUL, jsonb refuses \\u0000, and a lone surrogate cannot be encoded as UTF-8)."""
    return _tidy(text) if _ODD.search(text) else text


def _repair(text: str) -> str:
    """ftfy's mojibake repair, for texts that show a sign of mojibake."""
    return ftfy.fix_text(text, _FTFY) if _MOJIBAKE_HINT.search(text) else text


def clean_text(text: str) -> str:
    """The display text: repaired, NFC, LF line endings, no trailing spaces, tidy blank lines.

    Idempotent: ``clean_text(clean_text(x)) == clean_text(x)``, so a second pass over a
    stored document changes nothing.
    """
    if not text.isascii():
        # Repair before tidying (ftfy needs the C1 controls mojibake often holds) and after
        # (removing an invisible character can bring a mojibake pair together); when the
        # first pass changed nothing, the second would not either.
        once = _tidy(_repair(text))
        text = unicodedata.normalize("NFC", once if once == text else _tidy(_repair(once)))
    else:
        text = _tidy(text)
    if " \n" in text:  # cheap test first: the regex would stop at every space of a 50 MB line
        text = _TRAILING_SPACES.sub("\n", text)
    return _BLANK_RUNS.sub("\n\n", text).strip()


def one_line(text: str) -> str:
    """A field such as a title or author: cleaned and on a single line."""
    return " ".join(clean_text(text).split())


def canonical_text(text: str) -> str:
    """The folded form two copies of one article share, whatever their typography."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = unicodedata.normalize("NFKC", folded)
    # one str.replace per foldable character the text holds (none of them is in what they
    # fold to, so the order does not matter): ~5x cheaper than a regex with a callback
    for char, plain in _FOLD_ITEMS:
        if char in folded:
            folded = folded.replace(char, plain)
    # every whitespace run as one space, none at the ends (str.split's whitespace is re's \s):
    # split-and-join is ~3x cheaper on an article, the regex on huge texts (no 10M-item list)
    if len(folded) < _CHUNK:
        return " ".join(folded.split())
    return _ODD_WHITESPACE.sub(" ", folded).strip()


def canonical_hash(text: str) -> str:
    """sha256 hex of the canonical text: the identity exact-duplicate detection uses."""
    data = canonical_text(text).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def count_words(text: str) -> int:
    """Words as runs of letters/digits, so "Russia’s" and "U.S.-Russia" count once."""
    count, pos = 0, 0
    while pos < len(text):  # in slices cut at whitespace, so memory stays flat on huge texts
        cut = _WHITESPACE.search(text, pos + _CHUNK)
        end = cut.start() if cut else len(text)
        count += len(_WORD.findall(text, pos, end))
        pos = end
    return count
