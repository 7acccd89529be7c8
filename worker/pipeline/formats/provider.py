"""The news industry's own metadata, shaped one way for every agency format (ninjs,
NewsML-G2): subject and genre codes as ``{scheme, code, name}``, urgency as a number,
pubstatus as a word.  Shared by the ninjs and NewsML-G2 parsers; documented in
docs/formats.md ("Provider metadata")."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from worker.pipeline.textclean import one_line

#: IPTC NewsCodes vocabularies by the path of their URI, and the scheme alias (qcode
#: prefix) the IPTC catalogue gives them.
_IPTC_SCHEMES = {"mediatopic": "medtop", "subjectcode": "subj", "genre": "genre", "scene": "scene"}
_CV_URI = re.compile(r"https?://cv\.iptc\.org/newscodes/([A-Za-z0-9_-]+)/([^/?#\s]+)/?$")
_CV_SCHEME = re.compile(r"https?://cv\.iptc\.org/newscodes/([A-Za-z0-9_-]+)/?$")
_QCODE = re.compile(r"([A-Za-z][\w.-]{0,40}):(\S{1,100})")
MAX_CODES = 200


def subject_code(
    *, scheme: str | None = None, code: str | None = None, name: str | None = None, uri: str | None = None
) -> dict[str, str] | None:
    """One subject or genre code as ``{scheme, code, name[, uri]}``: a qcode
    (``medtop:11000000``) or an IPTC cv URI gives scheme and code; None when nothing names it."""
    scheme, code_value = _clean(scheme), _clean(code)
    uri, name = _clean(uri), _clean(name)
    if code_value and "/" not in code_value and (qcode := _QCODE.fullmatch(code_value)):
        scheme, code_value = qcode[1], qcode[2]  # the qcode's own scheme alias wins
    elif scheme and (cv_scheme := _CV_SCHEME.match(scheme)):
        scheme = _IPTC_SCHEMES.get(cv_scheme[1].lower(), cv_scheme[1].lower())
    if code_value is None and uri:
        if (cv := _CV_URI.match(uri)) is not None:
            scheme = scheme or _IPTC_SCHEMES.get(cv[1].lower(), cv[1].lower())
            code_value = cv[2]
        elif (qcode := _QCODE.fullmatch(uri)) is not None and "/" not in uri:
            scheme, code_value = qcode[1], qcode[2]
    if code_value is None and name is None:
        return None
    entry = {"scheme": scheme, "code": code_value, "name": name, "uri": uri if uri and "/" in uri else None}
    return {k: v for k, v in entry.items() if v is not None}


def urgency_level(value: Any) -> int | None:
    """IPTC urgency: 1 (most urgent) to 9."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 1 <= number <= 9 else None


def status_word(value: Any) -> str | None:
    """``usable``, ``withheld`` or ``canceled`` (a qcode ``stat:usable`` loses its scheme)."""
    text = _clean(value if isinstance(value, str) else None)
    if text is None:
        return None
    return text.rsplit(":", 1)[-1].lower()


def primary_genre(genres: list[dict[str, str]]) -> str | None:
    """The first genre, as one short value: its QCode (``genre:Current``), else its name."""
    for genre in genres:
        if genre.get("code"):
            return f"{genre['scheme']}:{genre['code']}"[:100] if genre.get("scheme") else genre["code"][:100]
        if genre.get("name"):
            return genre["name"][:100]
    return None


def embargo_time(value: Any, warnings: list[str]) -> dt.datetime | None:
    """The embargo as an aware UTC time.  An ISO 8601 value without an offset is taken as UTC
    (with a warning); one that is not a date at all is dropped with a warning: an embargo the
    worker cannot read must not be guessed."""
    text = _clean(value if isinstance(value, str) else None)
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
        if when.tzinfo is None:
            warnings.append(f"embargoed: {text[:60]!r} has no UTC offset; taken as UTC")
            when = when.replace(tzinfo=dt.UTC)
        return when.astimezone(dt.UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 pushed out of range by its offset
        warnings.append(f"embargoed: {text[:60]!r} is not an ISO 8601 date and time; ignored")
        return None


def _clean(value: Any) -> str | None:
    return one_line(value) or None if isinstance(value, str) else None
