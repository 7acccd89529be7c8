"""Publication dates as producers write them, read into a ``datetime.date``.

Explicit patterns come first (locale-independent, so "Nov." means November on any machine);
python-dateutil is the fallback for the rest, and only for strings with a four-digit year,
because it happily turns "5" into the fifth of the current month.
"""

from __future__ import annotations

import datetime as dt
import re
from email.utils import parsedate_tz

from dateutil import parser as dateutil_parser

_MONTHS = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "sept": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
_MONTH_NAMES = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_TIME = (
    r"(?:[T ,]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?[ ]*(?:[ap]\.?m\.?)?[ ]*(?:Z|UTC|GMT|[+-]\d{2}:?\d{2}|[A-Z]{2,4})?)?"
)
_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})" + _TIME + r"\Z", re.IGNORECASE)
_DAY_MONTH_YEAR = re.compile(
    r"(\d{1,2})(?:st|nd|rd|th)?[ ]+([a-z]{3,9})\.?,?[ ]+(\d{4})" + _TIME + r"\Z", re.IGNORECASE
)
_MONTH_DAY_YEAR = re.compile(
    r"([a-z]{3,9})\.?[ ]+(\d{1,2})(?:st|nd|rd|th)?,?[ ]+(\d{4})" + _TIME + r"\Z", re.IGNORECASE
)
_WEEKDAY = re.compile(r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?[ ]+", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)\d{4}(?!\d)")
_MAX_RAW = 100


def parse_date(raw: str) -> tuple[dt.date | None, str | None]:
    """``(date, None)`` when the string is a date, else ``(None, warning)``.

    A bad date is never a failure: the document is still good, its date is just unknown.
    """
    text = " ".join(raw.split())
    if not text:
        return None, None
    if len(text) > _MAX_RAW:
        return None, f"date: {text[:40]!r}... is too long to be a date"
    parts = _explicit_parts(text)
    if parts is None:
        return _dateutil(text)
    year, month, day = parts
    try:
        return dt.date(year, month, day), None
    except ValueError:
        return None, f"date: {text!r} is not a valid date"


def _explicit_parts(text: str) -> tuple[int, int, int] | None:
    """(year, month, day) from ISO, "24 Nov 2026", "Nov. 24, 2026" or RFC 2822 forms."""
    if m := _ISO.match(text):
        return int(m[1]), int(m[2]), int(m[3])
    bare = _WEEKDAY.sub("", text, count=1) if _WEEKDAY.match(text) else text
    if (m := _DAY_MONTH_YEAR.match(bare)) and (month := _month(m[2])):
        return int(m[3]), month, int(m[1])
    if (m := _MONTH_DAY_YEAR.match(bare)) and (month := _month(m[1])):
        return int(m[3]), month, int(m[2])
    if rfc := parsedate_tz(text):
        return rfc[0], rfc[1], rfc[2]
    return None


def _month(name: str) -> int | None:
    name = name.lower()
    number = _MONTHS.get(name) or _MONTHS.get(name[:3])
    full = _MONTH_NAMES[number - 1] if number else ""
    # Accept "Nov", "Nov.", "Sept" and "November"; refuse "Novelty".
    if number and (name in _MONTHS or full.startswith(name)):
        return number
    return None


def _dateutil(text: str) -> tuple[dt.date | None, str | None]:
    if not _YEAR.search(text):
        return None, f"date: {text!r} is not a recognised date"
    try:
        parsed = dateutil_parser.parse(text, default=dt.datetime(2000, 1, 1))
    except (ValueError, OverflowError):
        return None, f"date: {text!r} is not a recognised date"
    return parsed.date(), None
