"""Language identification with py3langid, answered as an ISO 639-1 code or "und".

The model (shipped inside the package) loads on first use, not at import, so importing the
pipeline stays cheap for processes that never normalise.  "und" is an answer, not an error:
too little text, low confidence, or a script the model does not cover.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

UNDETERMINED = "und"
_SAMPLE_CHARS = 4000
_MIN_LETTERS = 20
_MIN_CONFIDENCE = 0.5
# Scripts of the languages the model knows; anything else (Cherokee, Tifinagh, ...) is "und".
_SCRIPT_NAMES = (
    "LATIN CYRILLIC GREEK ARABIC HEBREW DEVANAGARI BENGALI GURMUKHI GUJARATI ORIYA TAMIL TELUGU KANNADA"
    " MALAYALAM SINHALA THAI LAO TIBETAN MYANMAR GEORGIAN ARMENIAN ETHIOPIC KHMER HANGUL CJK HIRAGANA KATAKANA"
)
_SUPPORTED_SCRIPTS = frozenset(_SCRIPT_NAMES.split())
# Model labels without a two-letter code of their own, folded into their macrolanguage.
_TO_ISO639_1 = {"arz": "ar", "ary": "ar", "uzs": "uz", "yue": "zh", "wuu": "zh"}
_CODE = re.compile(r"([A-Za-z]{2})(?:[-_][A-Za-z0-9]{1,8})*")


@functools.cache
def _identifier() -> LanguageIdentifier:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text``'s language, or "und" when it cannot be told reliably."""
    sample = text[:_SAMPLE_CHARS]
    letters = [ch for ch in sample if ch.isalpha()]
    if len(letters) < _MIN_LETTERS or _dominant_script(letters) not in _SUPPORTED_SCRIPTS:
        return UNDETERMINED
    label, confidence = _identifier().classify(sample)
    code = _TO_ISO639_1.get(label, label)
    if confidence < _MIN_CONFIDENCE or len(code) != 2:
        return UNDETERMINED
    return str(code)


def language_code(value: str) -> str | None:
    """ "en", "EN", "en-US" and "en_GB" as "en"; None for anything that is not such a code."""
    match = _CODE.fullmatch(value.strip())
    return match[1].lower() if match else None


def _dominant_script(letters: list[str]) -> str:
    # Count characters first: a text has a few dozen distinct letters, so each is named once
    # (naming every letter of a 4,000-character sample was a third of the normalise stage).
    counts: Counter[str] = Counter()
    for ch, n in Counter(letters).items():
        counts[_script(ch)] += n
    return max(counts, key=lambda s: counts[s])


@functools.lru_cache(maxsize=4096)
def _script(ch: str) -> str:
    return unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]
