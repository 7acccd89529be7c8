"""Language identification reads the first 1,000 characters: the same answers as the 4,000
it read before, on every article of the shipped examples and of the benchmark corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import corpus
from worker.errors import InputError
from worker.pipeline.language import UNDETERMINED, detect_language, detect_sample
from worker.pipeline.normalise import normalise_records

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FULL_SAMPLE = 4000  # what detect_language read before 3 Dec 2026


def _texts() -> list[str]:
    """The text of every document of the shipped examples and of 400 generated articles, as
    normalised (language identification reads the cleaned text)."""
    raws = [p.read_bytes() for p in sorted(EXAMPLES.rglob("*")) if p.is_file() and p.suffix != ".py"]
    raws += [corpus.article(i) for i in range(400)]
    texts = []
    for raw in raws:
        for _, result in normalise_records(raw):
            if not isinstance(result, InputError) and result.text.strip():
                texts.append(result.text)
    return texts


def test_first_thousand_characters_answer_like_the_first_four_thousand() -> None:
    texts = _texts()
    assert len(texts) >= 420
    assert sum(len(t) > 1000 for t in texts) >= 400  # the prefix really is shorter than the text
    differing = [t[:80] for t in texts if detect_language(t) != detect_sample(t[:FULL_SAMPLE])]
    assert differing == []


OTHER_LANGUAGES = {
    "de": "Die Bundesregierung hat am Mittwoch neue Maßnahmen zur Energieversorgung beschlossen. ",
    "fr": "Le gouvernement a présenté mercredi un nouveau plan pour réduire les factures d'énergie. ",
    "es": "El gobierno presentó el miércoles un nuevo plan para reducir las facturas de la luz. ",
    "ru": "Правительство в среду представило новый план по снижению счетов за электроэнергию. ",
}


@pytest.mark.parametrize("code", sorted(OTHER_LANGUAGES))
def test_long_texts_in_other_languages(code: str) -> None:
    text = OTHER_LANGUAGES[code] * 60
    assert len(text) > FULL_SAMPLE
    assert detect_language(text) == detect_sample(text[:FULL_SAMPLE]) == code


def test_a_text_whose_start_says_nothing_falls_back_to_four_thousand_characters() -> None:
    """1,000 characters of figures, then prose: the short sample is "und", the long one is not."""
    text = "12 34 56 78 90 " * 70 + OTHER_LANGUAGES["de"] * 20
    assert detect_sample(text[:1000]) == UNDETERMINED
    assert detect_language(text) == detect_sample(text[:FULL_SAMPLE]) == "de"
    assert detect_language("short") == UNDETERMINED
