"""A deterministic corpus of news articles for the benchmark.

Each article looks like the shipped example (``examples/articles/000_*.txt``): a ``date``
line with a dateline (``CITY (AGENCY) —``), then paragraphs of reported speech about people,
organisations and places, 2.0 to 4.5 KB of UTF-8 (mean ~3.1 KB), with the vocabulary of wire
copy (:mod:`bench.lexicon`: sentences built from a few thousand words, the common ones more
often).  The same seed always gives the same bytes.

:func:`build` mixes, in a fixed order:

* the shipped example articles (``examples/articles/*.txt``), first;
* distinct generated articles (each carries figures and a closing line derived from its index);
* ``near_share`` near-duplicates: light edits of an earlier article (one sentence changed, a
  typo, two paragraphs swapped, or one paragraph rewritten, in turn), so the store's
  near-duplicate path (band look-up, MinHash estimate, the exact Jaccard near the threshold)
  runs; whether each really is one is decided by :func:`expected` with the project's own
  fingerprints and thresholds;
* ``duplicate_share`` byte-for-byte copies of an earlier article under another name.

An article is the source of at most one copy or edit, and copies and edits are never copied
again: each pair stands alone, so the counts of stored, exact and near outcomes do not
depend on the order in which concurrent workers store them.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench import lexicon
from bench.lexicon import ANALYSTS, CITIES, DAYS, MONTHS, OPENERS, ORGS, PEOPLE, PLACES, SENTENCES, TOPICS

_SLOT = re.compile(r"\{(\w+)(:[^}]*)?\}")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "articles"

Kind = Literal["original", "example", "exact", "near"]


@dataclass(frozen=True)
class CorpusFile:
    name: str
    data: bytes
    duplicate_of: int | None = None  # index of the article this file copies or edits
    kind: Kind = "original"
    edit: str = ""  # near: how it was edited (sentence, typo, reorder, rewrite)


def _zipf(words: tuple[str, ...] | list[str]) -> list[float]:
    return [1.0 / (rank + 2) for rank in range(len(words))]


_WEIGHTS = {name: _zipf(getattr(lexicon, name)) for name in ("NOUNS", "ADJECTIVES", "VERBS", "ADVERBS")}


def _plural(noun: str) -> str:
    if noun.endswith(("s", "sh", "ch", "x")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


@dataclass
class _Writer:
    """Fills sentence shapes for one article; every choice comes from ``rng``."""

    rng: random.Random
    index: int
    fields: dict[str, str]
    topic: tuple[str, ...]
    cache: dict[str, int] = field(default_factory=dict)

    def word(self, kind: str) -> str:
        words: tuple[str, ...] | list[str] = getattr(lexicon, kind)
        return self.rng.choices(words, _WEIGHTS[kind])[0]

    def noun_phrase(self) -> str:
        r = self.rng.random()
        if r < 0.3:
            return self.rng.choice(self.topic)
        if r < 0.55:
            return f"the {self.word('ADJECTIVES')} {self.word('NOUNS')}"
        if r < 0.75:
            return f"{self.word('ADJECTIVES')} {_plural(self.word('NOUNS'))}"
        return f"the {self.word('NOUNS')} of {self.rng.choice(self.topic)}"

    def subject(self) -> str:
        r = self.rng.random()
        if r < 0.25:
            return self.fields["person"]
        if r < 0.45:
            return self.rng.choice(ORGS)
        if r < 0.6:
            return f"officials in {self.rng.choice(CITIES)}"
        return f"the {self.word('ADJECTIVES')} {self.word('NOUNS')}"

    def pp(self) -> str:
        return self.fill(self.rng.choice(lexicon.PP_SHAPES), capital=False)

    def clause(self) -> str:
        tail = f" {self.pp()}" if self.rng.random() < 0.5 else ""
        return f"{self.subject()} {self.word('VERBS')} {self.noun_phrase()}{tail}"

    def fill(self, template: str, *, capital: bool = True) -> str:
        """``template`` with each ``{slot}`` (``{Slot}``: capitalised) drawn afresh."""
        text = _SLOT.sub(self._value, template)
        return text[0].upper() + text[1:] if capital else text

    def _value(self, match: re.Match[str]) -> str:
        name, spec = match.group(1), match.group(2) or ""
        value = self._draw(name.lower())
        if isinstance(value, int):
            return format(value, spec.lstrip(":"))
        return value[0].upper() + value[1:] if name[0].isupper() else value

    def _draw(self, slot: str) -> str | int:  # one case per slot
        rng = self.rng
        if slot in self.fields:
            return self.fields[slot]
        if slot == "analyst":
            return rng.choice(ANALYSTS)
        if slot == "org":
            return rng.choice(ORGS)
        if slot == "city":
            return rng.choice(CITIES)
        if slot == "n1":
            return 1000 + self.index * 7 + rng.randrange(900)
        if slot == "n2":
            return rng.randrange(2, 90)
        if slot == "n3":
            return 100 + self.index % 997 + rng.randrange(50)
        if slot == "n4":
            return rng.randrange(2, 30)
        if slot == "pct":
            return f"{rng.randrange(1, 40) / 10:.1f}"
        if slot == "noun":
            return self.word("NOUNS")
        if slot == "nouns":
            return _plural(self.word("NOUNS"))
        if slot == "adj":
            return self.word("ADJECTIVES")
        if slot == "adverb":
            return self.word("ADVERBS")
        if slot == "verb":
            return self.word("VERBS")
        if slot == "prep":
            return rng.choice(lexicon.PREPOSITIONS)
        if slot == "connector":
            return rng.choice(lexicon.CONNECTORS)
        if slot == "say":
            return rng.choice(lexicon.SAY)
        if slot == "clause":
            return self.clause()
        if slot == "subject":
            return self.subject()
        if slot == "object":
            return self.noun_phrase()
        if slot == "time":
            return self.fill(rng.choice(lexicon.TIMES), capital=False)
        if slot == "pp":
            return self.pp()
        raise KeyError(slot)

    def sentence(self) -> str:
        if self.rng.random() < 0.35:  # the stock sentences of wire copy
            return self.fill(self.rng.choice(SENTENCES))
        return self.fill(self.rng.choice(lexicon.SHAPES))

    def paragraph(self) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randrange(1, 4)))


def _writer(index: int, seed: int) -> tuple[_Writer, str]:
    rng = random.Random(f"{seed}:{index}")  # noqa: S311 - a reproducible corpus, not a secret
    place, agency = rng.choice(PLACES)
    title, person, country = rng.choice(PEOPLE)
    _, person2, _ = rng.choice([p for p in PEOPLE if p[1] != person])
    topic = rng.choice(TOPICS)
    date = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(700))
    fields = {
        "title": title,
        "person": person,
        "person2": person2,
        "country": country,
        "t0": topic[0],
        "t1": topic[1],
        "t2": topic[2],
        "t3": topic[3],
        "day": rng.choice(DAYS),
        "day2": rng.choice(DAYS),
        "month": rng.choice(MONTHS),
    }
    writer = _Writer(rng, index, fields, topic)
    return writer, f" date {date.isoformat()} {place} ({agency}) — "


def article(index: int, *, seed: int = 8) -> bytes:
    """The ``index``-th article of the corpus for ``seed`` (2.0-4.5 KB of UTF-8)."""
    writer, dateline = _writer(index, seed)
    rng = writer.rng
    paragraphs = [dateline + writer.fill(rng.choice(OPENERS))]
    target = min(4300, max(2100, int(rng.lognormvariate(8.0, 0.22))))  # median ~2,980 characters
    size = len(paragraphs[0])
    while size < target:
        paragraph = writer.paragraph()
        if size + len(paragraph) > 4300:
            break
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    # A closing line that no other article shares: the corpus never repeats by accident.
    paragraphs.append(f"Reporting by {rng.choice(ANALYSTS)}; file {index} of the {seed} series.")
    return "\n\n".join(paragraphs).encode("utf-8")


EDITS = ("sentence", "typo", "reorder", "rewrite")


def near_copy(data: bytes, edit: str, *, index: int, seed: int = 8) -> bytes:
    """A light edit of an article: ``sentence`` (one sentence replaced), ``typo`` (two letters
    of one word swapped), ``reorder`` (two paragraphs swapped) or ``rewrite`` (one paragraph
    replaced: close to the near-duplicate threshold, where the exact Jaccard decides)."""
    paragraphs = data.decode("utf-8").split("\n\n")
    writer, _ = _writer(index, seed + 1000)
    rng = writer.rng
    body = list(range(1, len(paragraphs) - 1))  # never the dateline or the closing line
    if edit == "sentence":
        i = rng.choice(body)
        sentences = paragraphs[i].split(". ")
        sentences[rng.randrange(len(sentences))] = writer.sentence().rstrip(".")
        paragraphs[i] = ". ".join(sentences)
    elif edit == "typo":
        i = rng.choice(body)
        words = paragraphs[i].split(" ")
        swaps = [(k, j) for k, w in enumerate(words) if w.isalpha() for j in range(1, len(w) - 1) if w[j] != w[j + 1]]
        k, j = rng.choice(swaps) if swaps else (0, -1)
        w = words[k]
        words[k] = w[:j] + w[j + 1] + w[j] + w[j + 2 :] if j > 0 else w + "s"
        paragraphs[i] = " ".join(words)
    elif edit == "reorder":
        i, j = rng.sample(body, 2) if len(body) >= 2 else (body[0], body[0])
        paragraphs[i], paragraphs[j] = paragraphs[j], paragraphs[i]
    elif edit == "rewrite":
        paragraphs[rng.choice(body)] = writer.paragraph()
    else:
        raise ValueError(f"unknown edit {edit!r}")
    return "\n\n".join(paragraphs).encode("utf-8")


def examples() -> list[tuple[str, bytes]]:
    """The shipped example articles, by name."""
    return [(p.name, p.read_bytes()) for p in sorted(EXAMPLES.glob("*.txt"))]


def build(count: int, *, duplicate_share: float = 0.03, near_share: float = 0.05, seed: int = 8) -> list[CorpusFile]:
    """``count`` files: the shipped examples, distinct articles, about ``near_share`` light
    edits and ``duplicate_share`` exact copies of earlier articles (see the module docstring)."""
    rng = random.Random(f"dups:{seed}")  # noqa: S311 - a reproducible corpus, not a secret
    files: list[CorpusFile] = [
        CorpusFile(f"{i:06d}-{name}", data, kind="example") for i, (name, data) in enumerate(examples()[:count])
    ]
    free: list[int] = list(range(len(files)))  # articles nobody has copied or edited yet
    edits = 0
    for i in range(len(files), count):
        roll = rng.random()
        if len(free) > 8 and roll < duplicate_share:
            source = free.pop(rng.randrange(len(free) - 4))  # not the last few: a copy comes later
            files.append(CorpusFile(f"{i:06d}-copy.txt", files[source].data, duplicate_of=source, kind="exact"))
        elif len(free) > 8 and roll < duplicate_share + near_share:
            source = free.pop(rng.randrange(len(free) - 4))
            edit = EDITS[edits % len(EDITS)]
            edits += 1
            data = near_copy(files[source].data, edit, index=i, seed=seed)
            files.append(CorpusFile(f"{i:06d}-near.txt", data, duplicate_of=source, kind="near", edit=edit))
        else:
            free.append(i)
            files.append(CorpusFile(f"{i:06d}.txt", article(i, seed=seed)))
    return files


@dataclass(frozen=True)
class Expected:
    """The outcomes the store should give the corpus, decided with the project's own
    normaliser, fingerprints and near-duplicate thresholds (:func:`expected`)."""

    stored: int
    exact: int
    near: int
    near_intended: int  # edits made
    near_rejected: int  # edits the thresholds do not call near duplicates: stored
    near_by_exact_jaccard: int  # edits decided by the exact Jaccard (estimate within the margin)
    edits: dict[str, int]  # near duplicates confirmed, by kind of edit

    @property
    def duplicates(self) -> int:
        return self.exact + self.near

    def as_dict(self) -> dict[str, object]:
        return {
            "stored": self.stored,
            "exact": self.exact,
            "near": self.near,
            "near_intended": self.near_intended,
            "near_rejected": self.near_rejected,
            "near_by_exact_jaccard": self.near_by_exact_jaccard,
            "near_by_edit": self.edits,
        }


def expected(files: list[CorpusFile]) -> Expected:
    """What the store decides for each edit against its source, as the store decides it: a
    shared LSH band, then the MinHash estimate, and the exact Jaccard of the shingles when
    the estimate is within the margin (``DedupParams.decide``); parameters from the default
    settings and ``SEEDWORKER_DEDUP_*``.  Exact copies are exact duplicates by construction."""
    from worker.pipeline.dedup import DedupParams, fingerprint, jaccard
    from worker.pipeline.normalise import normalise
    from worker.settings import Settings

    settings = Settings(_env_file=None)
    params = DedupParams(
        threshold=settings.dedup_threshold, shingle_size=settings.dedup_shingle_size, num_perm=settings.dedup_num_perm
    )
    near = rejected = by_exact = folded = 0
    edits: Counter[str] = Counter()
    for f in files:
        if f.kind != "near" or f.duplicate_of is None:
            continue
        source = files[f.duplicate_of]
        mine, theirs = normalise(f.data, filename=f.name), normalise(source.data, filename=source.name)
        if mine.canonical_hash == theirs.canonical_hash:  # an edit the canonical text folds away
            folded += 1
            continue
        a, b = fingerprint(mine.text, params), fingerprint(theirs.text, params)
        estimate = a.signature.similarity(b.signature)
        exact_used = params.threshold - params.margin <= estimate < params.threshold + params.margin
        shared = bool(set(a.bands) & set(b.bands))
        if (
            shared
            and settings.dedup_near
            and params.decide(estimate, functools.partial(jaccard, set(a.shingles), set(b.shingles)))
        ):
            near += 1
            edits[f.edit] += 1
        else:
            rejected += 1
        by_exact += exact_used and shared
    exact = folded + sum(1 for f in files if f.kind == "exact")
    intended = sum(1 for f in files if f.kind == "near")
    return Expected(
        stored=len(files) - exact - near,
        exact=exact,
        near=near,
        near_intended=intended,
        near_rejected=rejected,
        near_by_exact_jaccard=by_exact,
        edits=dict(sorted(edits.items())),
    )


def write(files: list[CorpusFile], directory: Path) -> list[Path]:
    """Write every file (closed, fsync not needed) into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in files:
        path = directory / f.name
        path.write_bytes(f.data)
        paths.append(path)
    return paths


def burst(staged: list[Path], inbox: Path) -> None:
    """Move staged files into the inbox as fast as the filesystem allows (one rename each)."""
    for path in staged:
        os.rename(path, inbox / path.name)


def fingerprint(files: list[CorpusFile]) -> str:
    """A short hash of the whole corpus, recorded with the results."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode())
        digest.update(f.data)
    return digest.hexdigest()[:16]
