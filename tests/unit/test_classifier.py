"""The ``auto`` classifier: train, store as JSON + arrays (no pickle), load, predict; and the
tagger's rule that ``auto`` never overrides or duplicates an explicit tag."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from bench.eval_tags import make_corpus
from worker.models import NormalisedDocument
from worker.pipeline.classifier import (
    Example,
    TopicModel,
    evaluate,
    fit,
    split,
    train_with_report,
    usable_labels,
)
from worker.pipeline.tag import FolderPolicy, Tagger, is_auto
from worker.pipeline.taxonomy import Taxonomy


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    corpus = make_corpus(15, topics=("politics", "sport", "health"), topical_share=0.3)
    return [Example(d.text, frozenset({d.topic})) for d in corpus]


@pytest.fixture(scope="module")
def model(examples: list[Example]) -> TopicModel:
    return fit(examples)


def _doc(text: str, title: str | None = None) -> NormalisedDocument:
    return NormalisedDocument(text=text, title=title, canonical_hash="0" * 64, language="en")


def test_round_trip_through_json_and_arrays_predicts_the_same(model: TopicModel) -> None:
    params = json.loads(json.dumps(model.params()))  # what the database's JSON column gives back
    arrays = model.to_arrays()
    loaded = TopicModel.from_stored(labels=list(model.labels), params=params, arrays=arrays, version=7)
    texts = [d.text for d in make_corpus(4, seed=123, topics=("politics", "sport", "health"))]
    assert np.allclose(loaded.predict_proba(texts), model.predict_proba(texts), atol=1e-6)
    assert loaded.version == 7 and loaded.labels == ["health", "politics", "sport"]
    assert params["vectorizer"]["kind"] == "hashing" and params["shapes"]["labels"] == 3


def test_stored_arrays_are_plain_numbers_never_pickle(model: TopicModel) -> None:
    with np.load(io.BytesIO(model.to_arrays()), allow_pickle=False) as data:
        assert sorted(data.files) == ["coef", "columns", "idf", "intercept", "scale", "shift"]
        assert all(data[name].dtype.kind in "fi" for name in data.files)
    evil = io.BytesIO()
    np.savez(evil, columns=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        TopicModel.from_stored(labels=["a"], params=model.params(), arrays=evil.getvalue(), version=1)


def test_unknown_format_is_refused(model: TopicModel) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        TopicModel.from_stored(labels=model.labels, params={"format": 99}, arrays=model.to_arrays(), version=1)


def test_predictions_respect_threshold_and_limit(model: TopicModel) -> None:
    text = "The striker scored in the cup final and the league title was decided in the stadium."
    [best] = model.predict([text], threshold=0.0, limit=1)
    assert [label for label, _ in best] == ["sport"]
    [three] = model.predict([text], threshold=0.0, limit=3)
    assert len(three) == 3 and [p for _, p in three] == sorted((p for _, p in three), reverse=True)
    assert model.predict([text], threshold=1.0) == [[]]
    assert model.predict([]) == []


def test_training_needs_two_usable_labels() -> None:
    one = [Example(f"text {i}", frozenset({"only"})) for i in range(10)]
    assert usable_labels(one, min_per_label=3) == ([], ["only"])  # on every document: nothing to learn
    with pytest.raises(ValueError, match="two labels"):
        fit(one)


def test_held_out_report(examples: list[Example]) -> None:
    model, report = train_with_report(examples)
    assert report.train_docs + report.test_docs == len(examples) == 45
    assert set(report.labels) == {"health", "politics", "sport"}
    assert report.top1_accuracy >= 0.8 and report.micro_f1 > 0.5
    assert model.labels == ["health", "politics", "sport"]
    train, test = split(examples)
    assert split(examples) == (train, test)  # deterministic


def test_evaluate_counts() -> None:
    texts = ["alpha alpha", "beta beta", "alpha beta"]
    examples = [Example(t, frozenset({t.split()[0]})) for t in texts] * 3
    model = fit(examples, min_per_label=2)
    report = evaluate(model, [Example("alpha alpha", frozenset({"alpha"}))], threshold=0.5)
    assert report.labels["alpha"].support == 1 and report.labels["beta"].support == 0
    assert report.top1_accuracy == 1.0


def test_auto_never_overrides_an_explicit_tag(model: TopicModel) -> None:
    model.version = 4
    text = "The striker scored in the cup final; the league title was decided in the stadium."
    plain_tagger = Tagger(taxonomy=Taxonomy.empty(), nlp=None, auto=model, auto_threshold=0.5)
    [plain, foldered, produced] = plain_tagger.tag_many(
        [(_doc(text), (), ()), (_doc(text), ("politics",), ()), (_doc(text), (), ("health",))]
    )
    autos = [(t.kind, t.name, t.source) for t in plain if is_auto(t)]
    assert autos == [("topic", "sport", "auto:v4")]
    assert next(t.score or 0.0 for t in plain if is_auto(t)) >= 0.5
    assert not [t for t in foldered if is_auto(t)]  # the folder is the user's word
    assert not [t for t in produced if is_auto(t)]
    assert [(t.kind, t.name) for t in foldered] == [("folder", "politics")]


def test_the_learned_label_is_given_even_when_a_rule_gave_the_same_name(model: TopicModel) -> None:
    """The user's label (auto) is not hidden by a rule of the same name (issue 18 §3): a
    rule ``topic`` and a shipped-style ``subject`` both leave the learned tag in place."""
    model.version = 4
    text = "The striker scored in the cup final; the league title was decided in the stadium."
    for spec in ({"match": ["cup final"]}, {"match": ["cup final"], "code": "medtop:15000000"}):
        ruled = Taxonomy.from_mapping({"tags": {"sport": spec}})
        tags = Tagger(taxonomy=ruled, nlp=None, auto=model, auto_threshold=0.5).tag(_doc(text))
        given = sorted((t.kind, t.source) for t in tags if t.name == "sport")
        rule_kind = "subject" if "code" in spec else "topic"
        assert given == sorted([("topic", "auto:v4"), (rule_kind, "rule:sport")])


def test_front_matter_tags_are_explicit_too(model: TopicModel) -> None:
    tagger = Tagger(taxonomy=Taxonomy.empty(), nlp=None, auto=model, auto_threshold=0.01)
    doc = _doc("The striker scored.").model_copy(update={"producer_tags": ["sport"]})
    assert not [t for t in tagger.tag(doc) if is_auto(t)]


def test_folder_policy() -> None:
    policy = FolderPolicy(depth=2, mapping={"pol": "politics"}, ignore=frozenset({"incoming"}))
    assert policy.names(["Pol", "incoming", "x"]) == ["politics"]
    assert policy.names(["a", "b", "c"]) == ["a", "b"]
    assert FolderPolicy().names(["a", "b", "c"]) == ["a", "b", "c"]
    assert FolderPolicy(enabled=False).names(["a"]) == []
    tagger = Tagger(taxonomy=Taxonomy.empty(), nlp=None, folders=policy)
    tags = tagger.tag(_doc("text"), folder_tags=["pol", "Politics"])
    assert [(t.kind, t.name) for t in tags] == [("folder", "politics")]  # mapped, then deduplicated
