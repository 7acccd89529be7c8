"""The one-pass keyword candidates (issue 21) give exactly the keywords of the extractor they
replaced (tests/support/keywords_reference.py): names, scores, counts, spans and matched text,
on every document of the shipped examples, 400 generated articles and any text."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bench import corpus
from tests.support.keywords_reference import ReferenceKeywords
from worker.errors import InputError
from worker.models import NormalisedDocument
from worker.pipeline.keywords import PhraseKeywords
from worker.pipeline.normalise import normalise_records
from worker.pipeline.textclean import clean_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NEW, OLD = PhraseKeywords(), ReferenceKeywords()


def _doc(text: str, language: str) -> NormalisedDocument:
    return NormalisedDocument.model_validate(
        {"text": text, "language": language, "canonical_hash": "0" * 64, "word_count": len(text.split())}
    )


def _documents() -> list[NormalisedDocument]:
    raws = [p.read_bytes() for p in sorted(EXAMPLES.rglob("*")) if p.is_file() and p.suffix != ".py"]
    raws += [corpus.article(i) for i in range(400)]
    return [doc for raw in raws for _, doc in normalise_records(raw) if not isinstance(doc, InputError)]


def test_the_same_keywords_on_the_examples_and_the_bench_corpus() -> None:
    docs = _documents()
    assert len(docs) >= 420
    with_keywords = 0
    for doc in docs:
        for language in {doc.language, "en", "de", "und"}:
            variant = doc.model_copy(update={"language": language})
            new = NEW(variant)
            assert new == OLD(variant), (doc.text[:80], language)
            with_keywords += bool(new)
    assert with_keywords >= 420


# Words that exercise the runs: stopwords, numbers, possessives, past tenses, capitals, dots.
_WORD_TEXT = (
    "the The of said Said voted Voted agreed Agreed freed seed Russia Russia's Russia’s U.S. U.S "
    "city council City Council harbour bridge repairs nuclear power plant Power Plant 40,000 2026 "
    "x X it's It's Trump Putin white house White House e-mail rock&roll ΟΔΟΣ İstanbul ſtraße "
    "Bundesregierung die der Energieversorgung"
)
_WORDS = st.sampled_from(_WORD_TEXT.split())
_SEPARATORS = st.sampled_from([" ", " ", " ", "  ", ", ", ". ", "\n", "\n\n", " - ", "'s ", "\t"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_WORDS, _SEPARATORS), max_size=120), st.sampled_from(["en", "de", "und", "cy"]))
def test_the_same_keywords_on_word_soup(parts: list[tuple[str, str]], language: str) -> None:
    text = "".join(w + s for w, s in parts)
    doc = _doc(text, language)
    assert NEW(doc) == OLD(doc)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=1500), st.sampled_from(["en", "de", "und"]))
def test_the_same_keywords_on_any_cleaned_text(text: str, language: str) -> None:
    doc = _doc(clean_text(text), language)
    assert NEW(doc) == OLD(doc)
