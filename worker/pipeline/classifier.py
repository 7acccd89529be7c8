"""Learned topic tags (``auto``): a multi-label linear classifier with no pickled state.

Text is turned into features by a stateless :class:`~sklearn.feature_extraction.text.HashingVectorizer`
(word unigrams and bigrams, English stop words removed, hashed into ``n_features`` columns),
weighted by TF-IDF (the idf weights are a plain array) and L2-normalised.  One logistic
regression per label (one-vs-rest) is trained with scikit-learn; what is kept is only
numbers: the hashed columns seen in training, their idf, the coefficient matrix and the
intercepts.  :meth:`TopicModel.to_arrays` packs them with ``numpy.savez_compressed`` (read
back with ``allow_pickle=False``) and :meth:`TopicModel.params` is plain JSON, so a model
is stored in the database and loaded by every worker on every machine without a shared
disk, and prediction does not need scikit-learn's estimators, only the same vectorizer.

Why not pickle: a pickle executes code on load, ties the file to library versions and
cannot be inspected; a few arrays can.
"""

from __future__ import annotations

import io
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from worker.errors import NotEnoughTrainingData

DEFAULT_FEATURES = 2**18
ARRAY_NAMES = ("columns", "idf", "coef", "intercept", "scale", "shift")


@dataclass(frozen=True)
class Example:
    """One labelled document: its text (title and body) and its explicit topic names."""

    text: str
    labels: frozenset[str]


@dataclass(frozen=True)
class LabelMetrics:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class TrainingReport:
    """Held-out figures: per label, micro-averaged, and top-1 accuracy (the best-scoring
    label is one of the document's labels)."""

    labels: dict[str, LabelMetrics] = field(default_factory=dict)
    micro_f1: float = 0.0
    top1_accuracy: float = 0.0
    train_docs: int = 0
    test_docs: int = 0
    dropped_labels: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "labels": {k: vars(v) for k, v in sorted(self.labels.items())},
            "micro_f1": self.micro_f1,
            "top1_accuracy": self.top1_accuracy,
            "train_docs": self.train_docs,
            "test_docs": self.test_docs,
            "dropped_labels": self.dropped_labels,
        }


def _vectorizer(n_features: int) -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        n_features=n_features,
        alternate_sign=False,
        norm=None,
        ngram_range=(1, 2),
        stop_words="english",
        lowercase=True,
        dtype=np.float32,
    )


class TopicModel:
    """A trained classifier: ``predict`` is pure numpy over the stored arrays."""

    def __init__(
        self,
        *,
        labels: Sequence[str],
        columns: NDArray[np.int64],
        idf: NDArray[np.float32],
        coef: NDArray[np.float32],
        intercept: NDArray[np.float32],
        scale: NDArray[np.float32] | None = None,
        shift: NDArray[np.float32] | None = None,
        n_features: int = DEFAULT_FEATURES,
        version: int = 0,
    ) -> None:
        scale = np.ones(len(labels), dtype=np.float32) if scale is None else scale
        shift = np.zeros(len(labels), dtype=np.float32) if shift is None else shift
        per_label = (len(labels),)
        if (
            coef.shape != (len(labels), len(columns))
            or not intercept.shape == scale.shape == shift.shape == per_label
            or idf.shape != columns.shape
        ):
            raise ValueError("inconsistent model arrays")
        self.labels = list(labels)
        self.columns = columns
        self.idf = idf
        self.coef = coef
        self.intercept = intercept
        self.scale = scale  # Platt scaling of each label's decision value: calibrated confidences
        self.shift = shift
        self.n_features = n_features
        self.version = version
        self._vectorizer = _vectorizer(n_features)

    # -- features -----------------------------------------------------------------------------
    def features(self, texts: Sequence[str]) -> Any:
        """Hashed counts restricted to the training columns, TF-IDF weighted, L2-normalised."""
        return _tfidf(self._vectorizer.transform(texts)[:, self.columns], self.idf)

    def predict_proba(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Probability of each label for each text (rows: texts, columns: ``labels``)."""
        if not texts:
            return np.zeros((0, len(self.labels)))
        return _sigmoid(self.scale * self.decision(texts) + self.shift)

    def decision(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """The linear models' raw scores (before calibration)."""
        return np.asarray(self.features(texts) @ self.coef.T, dtype=np.float64) + self.intercept

    def predict(self, texts: Sequence[str], *, threshold: float = 0.5, limit: int = 3) -> list[list[tuple[str, float]]]:
        """``(label, probability)`` at or above ``threshold``, best first, at most ``limit``."""
        out = []
        for row in self.predict_proba(texts):
            order = np.argsort(-row, kind="stable")[:limit]
            out.append([(self.labels[i], round(float(row[i]), 4)) for i in order if row[i] >= threshold])
        return out

    # -- storage: JSON + arrays, never pickle --------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {
            "format": 1,
            "vectorizer": {
                "kind": "hashing",
                "n_features": self.n_features,
                "ngram_range": [1, 2],
                "stop_words": "english",
                "tfidf": "smooth-idf, l2",
            },
            "model": "one-vs-rest logistic regression, Platt-scaled on 3-fold out-of-fold scores",
            "shapes": {"labels": len(self.labels), "columns": len(self.columns)},
        }

    def to_arrays(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            columns=self.columns.astype("<i8"),
            idf=self.idf.astype("<f4"),
            coef=self.coef.astype("<f4"),
            intercept=self.intercept.astype("<f4"),
            scale=self.scale.astype("<f4"),
            shift=self.shift.astype("<f4"),
        )
        return buf.getvalue()

    @classmethod
    def from_stored(cls, *, labels: Sequence[str], params: dict[str, Any], arrays: bytes, version: int) -> TopicModel:
        if params.get("format") != 1 or params.get("vectorizer", {}).get("kind") != "hashing":
            raise ValueError(f"unsupported tag model format: {params.get('format')!r}")
        with np.load(io.BytesIO(arrays), allow_pickle=False) as data:
            parts = {name: data[name] for name in ARRAY_NAMES}
        return cls(
            labels=labels,
            columns=parts["columns"].astype(np.int64),
            idf=parts["idf"].astype(np.float32),
            coef=parts["coef"].astype(np.float32),
            intercept=parts["intercept"].astype(np.float32),
            scale=parts["scale"].astype(np.float32),
            shift=parts["shift"].astype(np.float32),
            n_features=int(params["vectorizer"]["n_features"]),
            version=version,
        )


def _tfidf(counts: Any, idf: NDArray[np.float32]) -> Any:
    from sklearn.preprocessing import normalize

    weighted = counts.multiply(idf).tocsr() if counts.shape[0] else counts
    return normalize(weighted, norm="l2", copy=False)


def usable_labels(examples: Iterable[Example], *, min_per_label: int) -> tuple[list[str], list[str]]:
    """Labels with enough documents to learn from (and not on every document), and the rest."""
    examples = list(examples)
    counts = Counter(label for ex in examples for label in ex.labels)
    keep = sorted(k for k, n in counts.items() if n >= min_per_label and n < len(examples))
    return keep, sorted(set(counts) - set(keep))


def fit(
    examples: Sequence[Example], *, n_features: int = DEFAULT_FEATURES, min_per_label: int = 3, c: float = 10.0
) -> TopicModel:
    """Train on ``examples`` (every usable label gets one binary logistic regression).

    Raises NotEnoughTrainingData (a ValueError) when fewer than two labels have ``min_per_label`` documents.
    """
    from sklearn.linear_model import LogisticRegression

    labels, _ = usable_labels(examples, min_per_label=min_per_label)
    if len(labels) < 2:
        raise NotEnoughTrainingData(f"need at least two labels with {min_per_label}+ documents each, found {labels}")
    vectorizer = _vectorizer(n_features)
    counts = vectorizer.transform([ex.text for ex in examples]).tocsc()
    columns = np.flatnonzero(np.diff(counts.indptr)).astype(np.int64)  # hashed columns seen in training
    counts = counts[:, columns].tocsr()
    df = np.bincount(counts.indices, minlength=len(columns)).astype(np.float64)
    n = len(examples)
    idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
    x = _tfidf(counts, idf)
    coef = np.zeros((len(labels), len(columns)), dtype=np.float32)
    intercept = np.zeros(len(labels), dtype=np.float32)
    scale = np.ones(len(labels), dtype=np.float32)
    shift = np.zeros(len(labels), dtype=np.float32)

    def model() -> Any:
        return LogisticRegression(C=c, class_weight="balanced", max_iter=1000, solver="liblinear", random_state=0)

    for i, label in enumerate(labels):
        y = np.array([label in ex.labels for ex in examples], dtype=np.int8)
        clf = model().fit(x, y)
        coef[i] = clf.coef_[0]
        intercept[i] = clf.intercept_[0]
        scale[i], shift[i] = _calibrate(model, x, y)
    return TopicModel(
        labels=labels,
        columns=columns,
        idf=idf,
        coef=coef,
        intercept=intercept,
        scale=scale,
        shift=shift,
        n_features=n_features,
    )


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-z))


def _calibrate(make: Any, x: Any, y: NDArray[np.int8]) -> tuple[float, float]:
    """Platt scaling: ``p = sigmoid(a * score + b)`` fitted on out-of-fold scores (up to 3
    folds), with Platt's smoothed targets so a few documents do not give certainties.  The
    linear models are trained with balanced class weights, which ranks well but shifts their
    raw probabilities; this turns scores into confidences a threshold can mean something on.
    Identity (1, 0) when a label has too few documents to hold some out."""
    from scipy.optimize import minimize
    from sklearn.model_selection import StratifiedKFold

    positives = int(y.sum())
    folds = min(3, positives, len(y) - positives)
    if folds < 2:
        return 1.0, 0.0
    scores = np.zeros(len(y), dtype=np.float64)
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=0).split(np.zeros(len(y)), y):
        scores[test] = make().fit(x[train], y[train]).decision_function(x[test])
    negatives = len(y) - positives
    target = np.where(y == 1, (positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0))

    def loss(ab: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        z = ab[0] * scores + ab[1]
        d = _sigmoid(z) - target
        return float(np.sum(np.logaddexp(0.0, z) - target * z)), np.array([d @ scores, d.sum()])

    result = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = (float(v) for v in result.x)
    return (a, b) if a > 0 else (1.0, 0.0)  # a model worse than chance is not inverted


def split(
    examples: Sequence[Example], *, test_fraction: float = 0.2, seed: int = 13
) -> tuple[list[Example], list[Example]]:
    """A deterministic shuffled split; the held-out part has at least one document."""
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)  # noqa: S311 - a reproducible split, not a secret
    n_test = max(1, math.floor(len(shuffled) * test_fraction)) if len(shuffled) > 1 else 0
    return shuffled[n_test:], shuffled[:n_test]


def evaluate(model: TopicModel, test: Sequence[Example], *, threshold: float = 0.5) -> TrainingReport:
    """Per-label precision/recall/F1 on ``test`` at ``threshold``, micro F1, top-1 accuracy."""
    report = TrainingReport(test_docs=len(test))
    if not test:
        return report
    proba = model.predict_proba([ex.text for ex in test])
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    top_hits = 0
    for row, ex in zip(proba, test, strict=True):
        predicted = {model.labels[i] for i, p in enumerate(row) if p >= threshold}
        truth = ex.labels & set(model.labels)
        for label in model.labels:
            if label in predicted and label in truth:
                tp[label] += 1
            elif label in predicted:
                fp[label] += 1
            elif label in truth:
                fn[label] += 1
        top_hits += model.labels[int(np.argmax(row))] in ex.labels
    for label in model.labels:
        report.labels[label] = _prf(tp[label], fp[label], fn[label])
    micro = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    report.micro_f1 = micro.f1
    report.top1_accuracy = round(top_hits / len(test), 4)
    return report


def _prf(tp: int, fp: int, fn: int) -> LabelMetrics:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return LabelMetrics(round(precision, 4), round(recall, 4), round(f1, 4), tp + fn)


def train_with_report(
    examples: Sequence[Example],
    *,
    min_per_label: int = 3,
    threshold: float = 0.5,
    n_features: int = DEFAULT_FEATURES,
) -> tuple[TopicModel, TrainingReport]:
    """Measure on a held-out 20 %, then train the model that is kept on everything."""
    train, test = split(examples)
    labels, dropped = usable_labels(examples, min_per_label=min_per_label)
    held_out = fit(train, n_features=n_features, min_per_label=min(min_per_label, 2))
    report = evaluate(held_out, test, threshold=threshold)
    model = fit(examples, n_features=n_features, min_per_label=min_per_label)
    report.train_docs = len(train)
    report.dropped_labels = dropped
    report.labels = {k: v for k, v in report.labels.items() if k in labels} or report.labels
    return model, report
