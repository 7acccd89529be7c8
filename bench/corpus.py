"""A deterministic corpus of news-like articles for the benchmark.

Each article looks like the shipped example (``examples/articles/000_*.txt``): a ``date``
line with a dateline (``CITY (AGENCY) —``), then 8 to 14 paragraphs of reported speech about
people, organisations and places, about 2.5 to 3.5 KB of UTF-8.  The same seed always gives
the same bytes; every article is distinct (each carries figures derived from its index), and
``duplicate_share`` of the files are byte-for-byte copies of an earlier article under another
name, so the store's duplicate path is exercised too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

PEOPLE = [
    ("President", "Emmanuel Macron", "France"),
    ("Chancellor", "Olaf Scholz", "Germany"),
    ("Prime Minister", "Narendra Modi", "India"),
    ("President", "Luiz Inácio Lula da Silva", "Brazil"),
    ("Prime Minister", "Fumio Kishida", "Japan"),
    ("President", "Cyril Ramaphosa", "South Africa"),
    ("Secretary-General", "António Guterres", "the United Nations"),
    ("Prime Minister", "Justin Trudeau", "Canada"),
    ("President", "Recep Tayyip Erdoğan", "Turkey"),
    ("Prime Minister", "Giorgia Meloni", "Italy"),
    ("President", "Volodymyr Zelenskyy", "Ukraine"),
    ("Secretary of State", "Marco Rubio", "the United States"),
    ("Governor", "Gavin Newsom", "California"),
    ("Mayor", "Sadiq Khan", "London"),
    ("Finance Minister", "Nirmala Sitharaman", "India"),
    ("President", "Claudia Sheinbaum", "Mexico"),
    ("Prime Minister", "Anthony Albanese", "Australia"),
    ("President", "Javier Milei", "Argentina"),
]
ANALYSTS = [
    "Maria Gonzalez",
    "David Chen",
    "Amara Okafor",
    "Lena Fischer",
    "Rahul Mehta",
    "Sophie Laurent",
    "James O'Brien",
    "Yuki Tanaka",
    "Fatima Al-Sayed",
    "Peter Novak",
    "Grace Mwangi",
    "Tomás Herrera",
]
ORGS = [
    "the International Monetary Fund",
    "the World Health Organization",
    "the European Central Bank",
    "the Federal Reserve",
    "NATO",
    "the World Bank",
    "the Red Cross",
    "Amnesty International",
    "the Brookings Institution",
    "the Center for Strategic and International Studies",
    "Reuters",
    "the European Commission",
    "the African Union",
    "Human Rights Watch",
]
PLACES = [
    ("WASHINGTON", "AP"),
    ("LONDON", "Reuters"),
    ("PARIS", "AFP"),
    ("BERLIN", "AP"),
    ("TOKYO", "Kyodo"),
    ("NEW DELHI", "AP"),
    ("NAIROBI", "Reuters"),
    ("BRUSSELS", "AFP"),
    ("MEXICO CITY", "AP"),
    ("SYDNEY", "AAP"),
    ("SÃO PAULO", "Reuters"),
    ("JOHANNESBURG", "AP"),
    ("KYIV, Ukraine", "AP"),
    ("GENEVA", "AFP"),
    ("OTTAWA", "CP"),
    ("ROME", "ANSA"),
]
CITIES = [
    "Moscow",
    "Beijing",
    "Kyiv",
    "Madrid",
    "Lagos",
    "Cairo",
    "Seoul",
    "Istanbul",
    "Toronto",
    "Chicago",
    "Mumbai",
    "Jakarta",
    "Warsaw",
    "Lisbon",
    "Athens",
    "Bogotá",
]
TOPICS = [
    ("inflation", "interest rates", "the central bank's next meeting", "consumer prices"),
    ("the ceasefire", "peace talks", "a prisoner exchange", "humanitarian corridors"),
    ("the election", "the opposition coalition", "voter turnout", "the campaign's final week"),
    ("the heat wave", "wildfires", "emergency water supplies", "crop losses"),
    ("the trade dispute", "tariffs on steel", "export controls", "supply chains"),
    ("the vaccine rollout", "hospital capacity", "a new variant", "public health funding"),
    ("the strike", "wage negotiations", "the transport union", "rail services"),
    ("the earthquake", "rescue teams", "temporary shelters", "reconstruction costs"),
    ("the budget", "pension reform", "the deficit", "spending cuts"),
    ("the climate summit", "emissions targets", "coal plants", "renewable energy investment"),
]
OPENERS = [
    "{title} {person} is set to hold talks on {day} with leaders from {city} as pressure grows over {t0}.",
    "{title} {person} said on {day} that {t0} would dominate the coming weeks, despite concerns over {t1}.",
    "Officials in {country} were scrambling on {day} to respond to {t0}, with {org} warning of {t3}.",
    "{title} {person} faced mounting criticism on {day} over the handling of {t0} and {t1}.",
]
SENTENCES = [
    "{analyst}, a senior fellow at {org}, said the government had little room to manoeuvre on {t1}.",
    "“We are doing everything we can, but {t2} cannot be solved overnight,” {person} told reporters in {city}.",
    "About {n1:,} people have been affected so far, according to figures released by {org} on {day}.",
    "The talks in {city} follow weeks of negotiations over {t1} and {t2}, officials said.",
    "Critics, including {analyst}, argue that {t3} has been neglected for years and now costs {n2} billion dollars.",
    "{org} estimated that {t0} could reduce growth by {pct} percentage points this year.",
    "Protesters gathered outside the parliament in {city} on {day}, demanding action on {t2}.",
    "In a statement, {org} said it was “deeply concerned” about {t3} and called for restraint.",
    "Speaking after a meeting with {person2}, {person} said both sides had agreed to keep talking about {t1}.",
    "The plan, first reported in {month}, would set aside {n2} billion dollars for {t3}.",
    "Opposition lawmakers in {country} have demanded an inquiry into {t0}, saying the public deserves answers.",
    "“This is a defining moment for {country},” said {analyst}, who has studied {t1} for two decades.",
    "Markets in {city} fell {pct} percent on {day} as investors weighed the risks of {t0}.",
    "{person2} is expected to travel to {city} next week for further talks on {t2}.",
    "Local officials reported {n3:,} new cases linked to {t3} in the past {n4} days.",
    "The agreement must still be approved by lawmakers, who return from recess on {day2}.",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"]


@dataclass(frozen=True)
class CorpusFile:
    name: str
    data: bytes
    duplicate_of: int | None = None  # index of the article this file copies


def article(index: int, *, seed: int = 8) -> bytes:
    """The ``index``-th article of the corpus for ``seed`` (about 3 KB of UTF-8)."""
    rng = random.Random(f"{seed}:{index}")  # noqa: S311 - a reproducible corpus, not a secret
    place, agency = rng.choice(PLACES)
    title, person, country = rng.choice(PEOPLE)
    _, person2, _ = rng.choice(PEOPLE)
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

    def fill(template: str) -> str:
        text = template.format(
            analyst=rng.choice(ANALYSTS),
            org=rng.choice(ORGS),
            city=rng.choice(CITIES),
            n1=1000 + index * 7 + rng.randrange(900),
            n2=rng.randrange(2, 90),
            n3=100 + index % 997 + rng.randrange(50),
            n4=rng.randrange(2, 30),
            pct=f"{rng.randrange(1, 40) / 10:.1f}",
            **fields,
        )
        return text[0].upper() + text[1:]

    opener = fill(rng.choice(OPENERS))
    paragraphs = [f" date {date.isoformat()} {place} ({agency}) — {opener}"]
    target = rng.randrange(2500, 3500)
    size = len(paragraphs[0])
    while size < target:
        paragraph = " ".join(fill(rng.choice(SENTENCES)) for _ in range(rng.randrange(1, 3)))
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    # A closing line that no other article shares: the corpus never repeats by accident.
    paragraphs.append(f"Reporting by {rng.choice(ANALYSTS)}; file {index} of the {seed} series.")
    return "\n\n".join(paragraphs).encode("utf-8")


def build(count: int, *, duplicate_share: float = 0.03, seed: int = 8) -> list[CorpusFile]:
    """``count`` files: distinct articles plus about ``duplicate_share`` exact copies."""
    rng = random.Random(f"dups:{seed}")  # noqa: S311 - a reproducible corpus, not a secret
    files: list[CorpusFile] = []
    originals: list[int] = []
    for i in range(count):
        if originals and rng.random() < duplicate_share:
            source = rng.choice(originals)
            files.append(CorpusFile(f"{i:06d}-copy.txt", files[source].data, duplicate_of=source))
        else:
            originals.append(i)
            files.append(CorpusFile(f"{i:06d}.txt", article(i, seed=seed)))
    return files


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
