"""``make eval-tags``: how well the learned ``auto`` topics agree with the user's folders.

A labelled corpus is generated deterministically (no downloads): six topics, each with its
own vocabulary, written as varied news-like sentences that also draw on a shared newsroom
vocabulary and on words several topics use ("minister", "record", "study", "budget", ...),
so topics overlap the way real sections do.  80 % of the documents go through the real
pipeline code (``worker.process``: normalise, tag, store) with their topic as a folder tag
(``inbox/<topic>/<file>``), exactly as the watcher sends them; ``auto`` is trained on the
store like ``seedworker tags train`` does; the other 20 % go through the same pipeline
without a folder and the tag they get from ``auto`` is compared with their true topic.

Prints accuracy (the best auto tag is the true topic), coverage (documents that got an auto
tag above the threshold) and a confusion table.  ``python -m bench.eval_tags [--per-topic N]``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _words(text: str) -> list[str]:
    return text.split()


TOPICS: dict[str, list[str]] = {
    "politics": _words(
        "parliament senator election ballot coalition opposition cabinet legislation campaign voters "
        "lawmakers referendum party leader constitution governor mayor debate veto bill amendment "
        "presidency majority caucus polls candidate incumbent speaker impeachment manifesto"
    ),
    "sport": _words(
        "match goal striker league championship tournament coach season stadium fans referee "
        "midfielder penalty final trophy squad injury transfer olympics medal sprint marathon "
        "tennis cricket innings playoff defender keeper victory fixture"
    ),
    "economy": _words(
        "inflation interest rates central bank gdp growth recession unemployment tariffs exports "
        "imports markets investors shares bonds currency deficit wages prices consumers retail "
        "earnings profits stocks manufacturing supply demand lending mortgage"
    ),
    "science": _words(
        "researchers telescope galaxy experiment laboratory physicists particle genome species "
        "fossil climate satellite orbit spacecraft molecule quantum astronomers evolution samples "
        "observatory asteroid planet reactor chemistry biology microscope hypothesis journal"
    ),
    "health": _words(
        "hospital patients vaccine doctors nurses disease outbreak infection treatment clinic "
        "surgery virus symptoms pandemic cancer diagnosis therapy medicine pharmacy wellbeing "
        "obesity diabetes dementia prescriptions emergency ward paramedics epidemic"
    ),
    "culture": _words(
        "festival album novel film director actress museum exhibition theatre concert band "
        "gallery painting orchestra premiere audience poet author screenplay opera choreographer "
        "sculpture bestseller soundtrack curator playwright documentary"
    ),
}
#: Words more than one section uses: what makes the task not trivially separable.
SHARED_TOPICAL = _words(
    "minister record study budget report funding crisis reform strike award record-breaking "
    "government public national plan policy research data results season director board "
    "investment launch programme agency council international global"
)
NEWSROOM = _words(
    "officials said on Tuesday according to a statement the latest figures showed people "
    "week year country city region local spokesperson told reporters announced expected "
    "continue despite concerns after months earlier this while many others added"
)
VERBS = _words(
    "announced criticised praised reviewed questioned welcomed delayed expanded cut unveiled "
    "examined defended rejected backed warned highlighted"
)
CONNECTORS = ["Meanwhile,", "However,", "On Monday,", "Later,", "In a statement,", "Separately,", "", "", ""]
CITIES = ["Lisbon", "Nairobi", "Toronto", "Osaka", "Lima", "Oslo", "Accra", "Perth", "Dublin", "Quito"]


@dataclass(frozen=True)
class LabelledDoc:
    filename: str
    topic: str
    text: str


def _sentence(rng: random.Random, topic: str, topical_share: float) -> str:
    def word() -> str:
        roll = rng.random()
        if roll < topical_share:
            return rng.choice(TOPICS[topic])
        if roll < topical_share + 0.25:
            return rng.choice(SHARED_TOPICAL)
        if roll < topical_share + 0.35:  # a word from another section: realistic noise
            return rng.choice(TOPICS[rng.choice([t for t in TOPICS if t != topic])])
        return rng.choice(NEWSROOM)

    n = rng.randint(6, 14)
    words = [word() for _ in range(n)]
    words.insert(rng.randint(1, len(words) - 1), rng.choice(VERBS))
    lead = rng.choice(CONNECTORS)
    body = " ".join(words)
    sentence = f"{lead} {body}" if lead else body[:1].upper() + body[1:]
    return sentence.strip() + "."


def make_corpus(
    per_topic: int = 60, *, seed: int = 4, topical_share: float = 0.1, topics: Sequence[str] = tuple(TOPICS)
) -> list[LabelledDoc]:
    """``per_topic`` documents for each of ``topics``, the same for the same arguments, shuffled."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible corpus, not a secret
    docs = []
    for topic in topics:
        for i in range(per_topic):
            city = rng.choice(CITIES)
            paragraphs = [
                " ".join(_sentence(rng, topic, topical_share) for _ in range(rng.randint(1, 3)))
                for _ in range(rng.randint(2, 3))
            ]
            text = f"{city.upper()} — " + "\n\n".join(paragraphs) + f"\n\nReport number {seed}-{topic}-{i}.\n"
            docs.append(LabelledDoc(f"{topic}-{i:04d}.txt", topic, text))
    rng.shuffle(docs)
    return docs


# -- a newsroom-like corpus (the real-stack evaluation) -------------------------------------------
#
# Five sections whose names are also names of the shipped taxonomy's rules (``business``,
# ``politics``, ``technology``, ``sport``, ``health``), written as reported news sentences with
# names, figures and places.  What makes it hard: sections share much of their vocabulary
# (business and technology stories both talk of companies, shares and launches; politics and
# health both of ministers, funding and policy), every story carries newsroom boilerplate, and
# a third of the stories are about two sections at once (a chipmaker's earnings, a health
# minister's budget, a club's sponsorship deal), labelled by their main section only.

NEWS_SECTIONS: tuple[str, ...] = ("business", "politics", "technology", "sport", "health")

_NEWS: dict[str, list[str]] = {
    "business": [
        "{org} reported a {pct} rise in quarterly profit, beating analysts' forecasts",
        "shares in {org} fell {pct} after the retailer cut its outlook for the year",
        "{person}, the chief executive of {org}, said the company would cut {num} jobs",
        "the takeover values {org} at {money}, including debt",
        "{org} agreed to buy a smaller rival in a deal worth {money}",
        "the company's revenue grew to {money} as demand from corporate customers held up",
        "investors pushed the board of {org} to sell its logistics division",
        "the airline said fuel costs and weaker bookings would weigh on earnings",
        "the bank set aside {money} to cover loans that may not be repaid",
        "the supermarket chain said sales in its stores rose {pct} over the holiday period",
        "shareholders approved the merger at a meeting in {place}",
        "the carmaker said it would build a new factory near {place}, creating {num} jobs",
        "the brewer raised prices to protect its margins as costs climbed",
        "{org} said its dividend would be held at last year's level",
    ],
    "politics": [
        "the opposition said the bill would be voted down when it returns to parliament",
        "{person} told lawmakers that the coalition would survive the vote",
        "the prime minister reshuffled the cabinet after two ministers resigned",
        "voters in {place} go to the polls on Sunday in a closely fought election",
        "the senate passed the measure by {num} votes to {num2}",
        "{person}, the party's leader, promised a referendum on the constitution",
        "the governor vetoed the bill, saying it had been rushed through the legislature",
        "polls show the ruling party trailing the opposition by {pct}",
        "the speaker suspended the session after protests in the chamber",
        "{person} announced a bid to lead the party at its conference in {place}",
        "the government survived a confidence vote late on Wednesday",
        "the electoral commission said turnout was the highest in two decades",
        "the interior minister defended the new law on campaign finance",
        "the president's spokesperson said the cabinet would meet again on Friday",
    ],
    "technology": [
        "{org} unveiled a smartphone with a faster chip and a longer-lasting battery",
        "the software update fixes a flaw that let hackers take over devices",
        "the chipmaker said demand for processors used in data centres remained strong",
        "{person}, who founded the start-up in {place}, said the app had {num} users",
        "the company is training a new artificial intelligence model on licensed data",
        "a ransomware attack knocked the council's computer systems offline for a week",
        "engineers at {org} demonstrated a prototype of the headset in {place}",
        "the cloud provider said an outage had affected customers across Europe",
        "regulators opened an inquiry into how the platform stores users' data",
        "the semiconductor plant will make chips for cars and phones from next year",
        "the open-source project released a new version of its programming language",
        "the satellite internet service now covers {num} countries",
        "researchers found the encryption could be broken with a modest computer",
        "the streaming platform changed its recommendation algorithm after complaints",
    ],
    "sport": [
        "{person} scored twice as the home side won {num}-{num2} in front of a full stadium",
        "the coach said his squad had been tired after the midweek cup tie",
        "the striker was sent off in the second half for a reckless challenge",
        "the champions moved three points clear at the top of the league",
        "{person} won the final in straight sets to lift her first major title",
        "the club confirmed the signing of the defender on a four-year contract",
        "the marathon in {place} was won in a course record time",
        "the team's captain will miss the rest of the season with a knee injury",
        "the referee awarded a penalty in stoppage time after a handball",
        "the sprinter set a national record to reach the semi-finals",
        "the batsman made a century as the touring side took control of the test",
        "fans queued outside the ground for tickets to the derby",
        "the goalkeeper saved two penalties in the shoot-out",
        "the federation banned the cyclist for two years after a failed doping test",
    ],
    "health": [
        "hospitals in {place} cancelled operations as flu admissions rose",
        "the vaccine cut the risk of severe illness by {pct} in a trial of {num} patients",
        "doctors warned that waiting lists for cancer treatment had grown",
        "{person}, a nurse at the city hospital, said wards had been short of staff",
        "health officials confirmed {num} cases of measles linked to a school",
        "the new drug slowed the progress of dementia in an early study",
        "the clinic offers free screening for diabetes and high blood pressure",
        "paramedics said ambulances waited hours outside emergency departments",
        "the outbreak was traced to contaminated water in a village near {place}",
        "researchers said regular exercise lowered the risk of heart disease",
        "the pharmacy chain said shortages of antibiotics would last into spring",
        "mental health services for teenagers are overwhelmed, the report found",
        "the surgeon performed the first transplant of its kind at the hospital",
        "the infection spread among patients on two wards before it was contained",
    ],
}
#: Sentences that belong to two sections at once: where the confusions come from.
_BRIDGES: dict[frozenset[str], list[str]] = {
    frozenset({"business", "technology"}): [
        "shares in the chipmaker rose {pct} after it reported record revenue",
        "the tech company said it would cut {num} jobs to save costs",
        "investors valued the start-up at {money} in its latest funding round",
        "the software maker's profit beat forecasts on strong cloud sales",
    ],
    frozenset({"politics", "health"}): [
        "the health minister promised {money} more for hospitals in the budget",
        "the government's plan to reform the health service was debated in parliament",
        "opposition lawmakers called for an inquiry into vaccine procurement",
    ],
    frozenset({"politics", "business"}): [
        "the finance minister said the tax on bank profits would stay",
        "lawmakers approved new rules on corporate takeovers",
        "the government sold its stake in the airline to private investors",
    ],
    frozenset({"sport", "business"}): [
        "the club reported revenue of {money} as sponsorship income rose",
        "the league signed a broadcasting deal worth {money}",
    ],
    frozenset({"technology", "politics"}): [
        "parliament passed a law requiring platforms to remove illegal content within a day",
        "the minister said the government would ban the app on official phones",
    ],
    frozenset({"health", "technology"}): [
        "the hospital uses an artificial intelligence tool to read scans",
        "the health app shared patients' data with advertisers, regulators said",
    ],
}
_NEWSROOM = [
    "officials said on {day} that more details would follow",
    "the figures were published by the national statistics office",
    "a spokesperson declined to comment further",
    "the announcement came after weeks of speculation",
    "the report is expected to be published next month",
    "critics said the decision had been a long time coming",
    "the plans will be reviewed again in the autumn",
    "{person} said the situation was being watched closely",
    "it was not immediately clear how many people were affected",
    "local media reported the news earlier in the day",
]
_FIRST = ["Anna", "David", "Maria", "James", "Sofia", "Kwame", "Yuki", "Lucas", "Amira", "Pedro", "Ingrid", "Rahul"]
_LAST = ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Costa", "Novak", "Haddad", "Schmidt", "Mensah", "Ortiz", "Byrne"]
_ORGS = ["Northwind", "Helix Group", "Aurora Systems", "Kestrel", "Bluepeak", "Meridian", "Vantage", "Orbis", "Solace"]
_PLACES = ["Lisbon", "Nairobi", "Toronto", "Osaka", "Lima", "Oslo", "Accra", "Perth", "Dublin", "Quito", "Leeds"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


def _fill(rng: random.Random, template: str) -> str:
    values = {
        "person": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
        "org": rng.choice(_ORGS),
        "place": rng.choice(_PLACES),
        "num": str(rng.randint(2, 900)),
        "num2": str(rng.randint(0, 3)),
        "pct": f"{rng.randint(2, 40)} percent",
        "money": f"${rng.randint(2, 90)} {rng.choice(['million', 'billion'])}",
        "day": rng.choice(_DAYS),
    }
    sentence = template.format(**values)
    return sentence[:1].upper() + sentence[1:] + "."


def _pick(rng: random.Random, main: str, second: str | None) -> str:
    """One sentence of a story: its own section's (about half of a mixed story, 72 % of
    another), its second section's or a bridge between the two (a quarter of a mixed story),
    a passing mention of any other section (5 to 8 %), or newsroom boilerplate (20 %)."""
    roll = rng.random()
    if second is not None and roll < 0.25:
        bridge = _BRIDGES.get(frozenset({main, second}))
        return rng.choice(bridge) if bridge and rng.random() < 0.4 else rng.choice(_NEWS[second])
    if roll < (0.75 if second is not None else 0.72):
        return rng.choice(_NEWS[main])
    if roll < 0.80:  # a passing mention of another section
        return rng.choice(_NEWS[rng.choice([s for s in NEWS_SECTIONS if s != main])])
    return rng.choice(_NEWSROOM)


def make_news_corpus(per_topic: int = 100, *, seed: int = 7, mixed_share: float = 0.33) -> list[LabelledDoc]:
    """``per_topic`` stories for each of :data:`NEWS_SECTIONS`, shuffled, the same for the
    same arguments.  A story has a headline, a dateline and 3 to 6 paragraphs; ``mixed_share``
    of them are also about a second section (a quarter of their sentences)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible corpus, not a secret
    docs = []
    for topic in NEWS_SECTIONS:
        for i in range(per_topic):
            second = rng.choice([s for s in NEWS_SECTIONS if s != topic]) if rng.random() < mixed_share else None
            headline = _fill(rng, rng.choice(_NEWS[topic])).rstrip(".")
            paragraphs = [
                " ".join(_fill(rng, _pick(rng, topic, second)) for _ in range(rng.randint(1, 3)))
                for _ in range(rng.randint(3, 6))
            ]
            city = rng.choice(_PLACES).upper()
            body = f"{city} (Newswire) — " + "\n\n".join(paragraphs)
            text = f"{headline}\n\n{body}\n\nReporting by {rng.choice(_FIRST)} {rng.choice(_LAST)}; story {i}.\n"
            docs.append(LabelledDoc(f"{topic}-{i:04d}.txt", topic, text))
    rng.shuffle(docs)
    return docs


def run(per_topic: int = 60, *, threshold: float = 0.5, seed: int = 4) -> dict[str, Any]:
    """The whole evaluation on a fresh SQLite store in a temporary directory."""
    from worker import process
    from worker.models import IngestRequest
    from worker.pipeline.tag import FolderPolicy, Tagger
    from worker.pipeline.taxonomy import Taxonomy
    from worker.store.engine import make_engine
    from worker.store.repository import DocumentStore
    from worker.store.tagging import TagStore

    docs = make_corpus(per_topic, seed=seed)
    cut = int(len(docs) * 0.8)
    labelled, unlabelled = docs[:cut], docs[cut:]
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'eval.db'}")
        store = DocumentStore(engine, event_source="urn:eval")
        store.create_schema()
        # no NER and no rules: the evaluation is about the learned model alone
        tagger = Tagger(taxonomy=Taxonomy.empty(), nlp=None, folders=FolderPolicy(), auto_threshold=threshold)

        def ingest(doc: LabelledDoc, folders: list[str]) -> Any:
            request = IngestRequest(text=doc.text, filename=doc.filename, source="inbox", folder_tags=folders)
            batch = process.prepare(request, f"eval:{doc.filename}", max_bytes=1 << 20)
            batch = process.tag(batch, tagger)
            return process.store(batch, store, max_bytes=1 << 20), batch

        started = time.perf_counter()
        for doc in labelled:
            ingest(doc, [doc.topic])
        tags = TagStore(store)
        trained_at = time.perf_counter()
        stored, report = tags.train(min_docs=10, threshold=threshold)
        train_seconds = time.perf_counter() - trained_at
        tagger.auto = tags.load_model(stored.version)
        confusion: Counter[tuple[str, str]] = Counter()
        for doc in unlabelled:
            _, batch = ingest(doc, [])
            autos = [t for t in batch.items[0].tags if t.source.startswith("auto")]
            best = max(autos, key=lambda t: t.score or 0.0).name if autos else "(none)"
            confusion[(doc.topic, best)] += 1
        elapsed = time.perf_counter() - started
        engine.dispose()
    correct = sum(n for (truth, got), n in confusion.items() if truth == got)
    covered = sum(n for (_, got), n in confusion.items() if got != "(none)")
    return {
        "documents": len(docs),
        "folder_tagged": len(labelled),
        "auto_tagged": len(unlabelled),
        "accuracy": round(correct / len(unlabelled), 4),
        "coverage": round(covered / len(unlabelled), 4),
        "threshold": threshold,
        "model_version": stored.version,
        "held_out_micro_f1": report.micro_f1,
        "held_out_top1": report.top1_accuracy,
        "train_seconds": round(train_seconds, 2),
        "total_seconds": round(elapsed, 2),
        "confusion": {f"{t}->{g}": n for (t, g), n in sorted(confusion.items())},
        "_confusion": confusion,
    }


def run_stack(
    per_topic: int = 100, *, seed: int = 7, threshold: float | None = None, workdir: Path | None = None
) -> dict[str, Any]:
    """The evaluation through the real stack (issue 18 §3): ``seedworker run`` (fast profile,
    the shipped taxonomy), 80 % of :func:`make_news_corpus` dropped into ``inbox/<section>/``,
    ``seedworker tags train`` as a user runs it, then the other 20 % dropped at the inbox root
    at once.  Reads the ``document.stored`` events: which learned (``auto``) labels each
    unlabelled story carries, and which rule tags of the same name it got too."""
    import json
    import os
    import subprocess
    import sys

    from bench.e2e import STREAM, BenchStack, wait_for_stream

    docs = make_news_corpus(per_topic, seed=seed)
    cut = int(len(docs) * 0.8)
    labelled, unlabelled = docs[:cut], docs[cut:]
    env = {"SEEDWORKER_AUTO_TRAIN_AFTER": "0"}
    if threshold is not None:
        env["SEEDWORKER_AUTO_TAG_THRESHOLD"] = str(threshold)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        stack = BenchStack(Path(tmp), "fast", extra_env=env)
        staging = Path(tmp) / "staging"

        def drop(items: Sequence[LabelledDoc], *, folders: bool) -> None:
            for doc in items:
                rel = Path(doc.topic, doc.filename) if folders else Path(doc.filename)
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                (stack.inbox / rel).parent.mkdir(parents=True, exist_ok=True)
                (staging / rel).write_text(doc.text, encoding="utf-8")
                os.replace(staging / rel, stack.inbox / rel)

        started = time.perf_counter()
        stack.start()
        try:
            client = stack.redis()
            drop(labelled, folders=True)
            wait_for_stream(client, len(labelled), 1800, stack)
            trained_at = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "worker.cli", "tags", "train", "--json"],
                env=stack.env(),
                cwd=stack.root,
                capture_output=True,
                timeout=900,
                check=False,
            )
            if out.returncode != 0:
                raise RuntimeError(f"tags train failed: {out.stderr.decode()[-2000:]}")
            trained = json.loads(out.stdout.decode().strip().splitlines()[-1])
            train_seconds = time.perf_counter() - trained_at
            drop(unlabelled, folders=False)
            wait_for_stream(client, len(docs), 1800, stack)
            events = [json.loads(f[b"event"]) for _, f in client.xrange(STREAM)]
            client.close()
        finally:
            stack.stop()
    stored = {e["data"]["filename"]: e["data"] for e in events if e["type"].endswith("document.stored")}
    return {
        **_score(unlabelled, stored),
        "documents": len(docs),
        "folder_tagged": len(labelled),
        "model_version": trained["version"],
        "held_out_micro_f1": trained["micro_f1"],
        "held_out_top1": trained["top1_accuracy"],
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def _score(unlabelled: Sequence[LabelledDoc], stored: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per section: stories, how many carry the right learned label, how many carry a wrong
    one, how many carry none; and how many also got a rule tag of the right section's name."""
    labels: dict[str, dict[str, int]] = {
        s: {"documents": 0, "right": 0, "wrong_given": 0, "none": 0, "rule_same_name": 0} for s in NEWS_SECTIONS
    }
    missing = 0
    for doc in unlabelled:
        data = stored.get(doc.filename)
        row = labels[doc.topic]
        row["documents"] += 1
        if data is None:
            missing += 1
            row["none"] += 1
            continue
        learned = {t["name"] for t in data["tags"] if str(t.get("source") or "").startswith("auto:")}
        row["right"] += doc.topic in learned
        row["none"] += not learned
        for other in learned - {doc.topic}:
            labels[other]["wrong_given"] += 1
        row["rule_same_name"] += any(
            t["name"] == doc.topic and str(t.get("source") or "").startswith("rule:") for t in data["tags"]
        )
    right = sum(r["right"] for r in labels.values())
    return {
        "unlabelled": len(unlabelled),
        "carrying_right_label": round(right / len(unlabelled), 4),
        "missing_events": missing,
        "labels": labels,
    }


def print_stack_report(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "section",
        "unlabelled",
        "carry the right auto label",
        "no auto label",
        "given wrongly (to others)",
        "rule tag of the same name too",
        title="learned labels on unlabelled stories, through the real stack",
    )
    for name, row in result["labels"].items():
        n = row["documents"] or 1
        table.add_row(
            name,
            str(row["documents"]),
            f"{row['right']} ({row['right'] / n:.1%})",
            str(row["none"]),
            str(row["wrong_given"]),
            str(row["rule_same_name"]),
        )
    console = Console()
    console.print(table)
    console.print(
        f"{result['documents']} stories: {result['folder_tagged']} dropped into inbox/<section>/, `tags train` "
        f"(v{result['model_version']}, {result['train_seconds']} s; "
        f"held-out micro-F1 {result['held_out_micro_f1']:.2f}, "
        f"top-1 {result['held_out_top1']:.2f}), {result['unlabelled']} dropped at the root:\n"
        f"  carrying the right learned label: {result['carrying_right_label']:.1%}   "
        f"(missing events: {result['missing_events']})   total {result['total_seconds']} s"
    )


def print_report(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    confusion: Counter[tuple[str, str]] = result["_confusion"]
    predicted = [*TOPICS, "(none)"]
    table = Table("true \\ auto", *predicted, title="auto topic vs folder (held-out 20 %)")
    for truth in TOPICS:
        row = [str(confusion.get((truth, got), 0) or ".") for got in predicted]
        table.add_row(truth, *row)
    console = Console()
    console.print(table)
    console.print(
        f"{result['documents']} documents: {result['folder_tagged']} folder-tagged and stored, auto trained "
        f"(v{result['model_version']}, {result['train_seconds']} s; held-out micro-F1 "
        f"{result['held_out_micro_f1']:.2f}), {result['auto_tagged']} tagged by auto:\n"
        f"  accuracy {result['accuracy']:.1%}   coverage {result['coverage']:.1%} (threshold "
        f"{result['threshold']})   total {result['total_seconds']} s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--per-topic", type=int, default=None, help="documents per topic (default 100 / 60)")
    parser.add_argument("--threshold", type=float, default=None, help="auto confidence threshold (default 0.5)")
    parser.add_argument("--seed", type=int, default=None, help="corpus seed (default 7 with --stack, 4 without)")
    parser.add_argument(
        "--stack",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="through the real stack on the newsroom corpus (default); --no-stack: in-process on the word corpus",
    )
    args = parser.parse_args(argv)
    from worker.logs import configure_logging
    from worker.settings import Settings

    configure_logging(Settings(_env_file=None, log_level="WARNING"))  # type: ignore[call-arg]  # stdout: the report
    if args.stack:
        per_topic = 100 if args.per_topic is None else args.per_topic
        print_stack_report(run_stack(per_topic, seed=7 if args.seed is None else args.seed, threshold=args.threshold))
    else:
        per_topic = 60 if args.per_topic is None else args.per_topic
        print_report(run(per_topic, threshold=args.threshold or 0.5, seed=4 if args.seed is None else args.seed))


if __name__ == "__main__":
    main()
