"""Wire-style bylines and datelines at the very start of a story.

``By Jane Doe`` on its own line, then ``WASHINGTON (AP) —``, ``KYIV, Ukraine (Reuters) -``
or ``NEW YORK (AP) --``.  Both are looked for only at the start of the body (the regexes
see at most a few hundred characters), so a quoted "LONDON (Reuters) -" in paragraph
five is body text, and a 50 MB line costs nothing extra.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from worker.models import Dateline

_HEAD_CHARS = 300
_WORD = r"[^\W\d_][^\W\d_.'’&-]*(?:[.'’-][^\W\d_]+)*\.?"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?[ \t]+\d{1,2}"
_DATELINE = re.compile(
    rf"(?P<place>{_WORD}(?:[ \t]+{_WORD}){{0,5}})"
    rf"(?:,[ \t]*(?P<country>{_WORD}(?:[ \t]+{_WORD}){{0,3}}))?"
    rf"(?:,[ \t]*(?P<when>{_MONTH}))?"
    r"[ \t]*(?:\([ \t]*(?P<agency>[^\W\d_][\w.&' -]{0,30}?)[ \t]*\)[ \t]*)?"
    r"(?P<dash>—|–|―|--|-)(?!-)[ \t]*\n?[ \t]*"
)
_BYLINE = re.compile(r"(?:By|BY):?[ \t]+(?P<name>[^\n]{2,100})\n+")
_CONNECTORS = frozenset(
    "de da do dos das del della di du la le les van von der den al el bin ibn y e of on upon am sur and".split()  # noqa: SIM905
)
_AGENCIES = frozenset(
    "ap reuters afp upi dpa bloomberg xinhua ansa efe kyodo yonhap tass ria pti ians ani aap cp pa cnn bbc ips".split()  # noqa: SIM905
)
_MAX_PLACE_WORDS = 4
_MAX_PLACE_CHARS = 60  # "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch" is 58


@dataclass(frozen=True)
class Lead:
    """The body with its byline and dateline taken off, and what they said."""

    text: str
    author: str | None = None
    dateline: Dateline | None = None


def split_lead(text: str) -> Lead:
    """Take a leading byline and/or dateline off ``text``; anything else is left alone."""
    author, rest = _split_byline(text)
    dateline, rest = _split_dateline(rest)
    if author is None and dateline is None:
        return Lead(text)
    return Lead(rest.strip(), author, dateline)


def _split_byline(text: str) -> tuple[str | None, str]:
    match = _BYLINE.match(text[:_HEAD_CHARS])
    if not match:
        return None, text
    name = re.split(r",| \| | - | — |\(", match["name"], maxsplit=1)[0].strip()
    if not _is_name(name):
        return None, text
    return _smart_title(name) if name.isupper() else name, text[match.end() :]


def _is_name(name: str) -> bool:
    """One to eight capitalised words (connectors such as "and" or "van" allowed)."""
    words = name.split()
    if not 1 <= len(words) <= 8 or name.endswith("."):
        return False
    return all(w[:1].isupper() or w.lower() in _CONNECTORS for w in words) and words[0][:1].isupper()


def _split_dateline(text: str) -> tuple[Dateline | None, str]:
    match = _DATELINE.match(text[:_HEAD_CHARS])
    if not match:
        return None, text
    place, country, agency = match["place"], match["country"], match["agency"]
    if not _is_place(place) or (country is not None and not _is_place(country)):
        return None, text
    if not _agency_fits(place, agency, match["dash"]):
        return None, text
    raw = text[: match.end("dash")].strip()
    dateline = Dateline(
        place=_display_place(place),
        country=_display_place(country) if country else None,
        agency=" ".join(agency.split()) if agency else None,
        raw=raw,
    )
    return dateline, text[match.end() :]


def _is_place(place: str) -> bool:
    """All caps ("NEW YORK") or Title Case ("New York"), at most four words."""
    words = place.split()
    main = [w for w in words if w.lower() not in _CONNECTORS]
    if not main or len(main) > _MAX_PLACE_WORDS or words[0].lower() in _CONNECTORS or len(place) > _MAX_PLACE_CHARS:
        return False
    if all(_is_caps(w) for w in words):
        return True
    return all(w[:1].isupper() for w in main) and not any(w.isupper() for w in main if len(w) > 3)


def _is_caps(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return bool(letters) and all(c.isupper() for c in letters)


def _agency_fits(place: str, agency: str | None, dash: str) -> bool:
    """Title Case places need a known agency; all-caps places need an agency or a long dash.

    "Apple (AAPL) - shares rose" must not become a dateline, "KYIV (Reuters) -" must.
    """
    caps = all(_is_caps(w) for w in place.split())
    if agency is None:
        letters = sum(c.isalpha() for c in place)
        return caps and dash != "-" and letters >= 3
    if len(agency.split()) > _MAX_PLACE_WORDS:
        return False
    return caps or " ".join(agency.lower().split()) in _AGENCIES


def _display_place(place: str) -> str:
    """WASHINGTON -> Washington, RIO DE JANEIRO -> Rio de Janeiro; Title Case kept as is."""
    place = " ".join(place.split())
    return _smart_title(place) if _is_caps(place) else place


def _smart_title(text: str) -> str:
    words = []
    for i, word in enumerate(text.split()):
        if i and word.lower() in _CONNECTORS:
            words.append(word.lower())
        elif re.fullmatch(r"(?:[^\W\d_]\.)+", word):
            words.append(word)  # U.S., D.C.
        else:
            words.append("-".join(_title_part(p) for p in word.split("-")))
    return " ".join(words)


def _title_part(part: str) -> str:
    titled = part[:1].upper() + part[1:].lower()
    # O'NEILL -> O'Neill, D’IBERVILLE -> D’Iberville
    if len(titled) > 2 and titled[1] in "'’":
        titled = titled[:2] + titled[2:].capitalize()
    return titled
