"""Versions of a news item that names itself (ninjs ``uri``, NewsML-G2 ``guid``).

Pure: what a provider's ``version`` and ``versioncreated`` say, and how two versions of one
item compare.  The store (``worker.store.updates``) decides with it whether an item is an
update, a repeat or a late older version (docs/dedup.md, "Updates").

Order: the ``version`` numbers when both versions have one (ninjs and NewsML-G2 both count
up from 1); ``versioncreated`` breaks a tie, or decides alone when a number is missing.
Versions with neither are ``UNORDERED``: the store then takes arrival order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Literal

Order = Literal["newer", "same", "older", "unordered"]
NEWER: Order = "newer"
SAME: Order = "same"
OLDER: Order = "older"
UNORDERED: Order = "unordered"

_NUMBER = re.compile(r"\s*v?(\d{1,9})\s*", re.IGNORECASE)
MAX_ITEM_ID_CHARS = 300


def version_number(raw: str | int | None) -> int | None:
    """``"3"``, ``3`` or ``"v3"`` → 3; anything else (``"2.1"``, ``"draft"``) → None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw >= 0 else None
    if not isinstance(raw, str):
        return None
    found = _NUMBER.fullmatch(raw)
    return int(found[1]) if found else None


def version_time(raw: str | None) -> dt.datetime | None:
    """An ISO 8601 date-time (``2026-11-24T14:05:00Z``, ``+01:00`` offsets) in UTC; a time
    without an offset is taken as UTC; anything else → None."""
    if not raw or not isinstance(raw, str):
        return None
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


@dataclass(frozen=True)
class ItemVersion:
    """One version of an item as the provider numbered and timed it."""

    number: int | None = None
    created: dt.datetime | None = None

    @property
    def known(self) -> bool:
        return self.number is not None or self.created is not None

    def compare(self, stored: ItemVersion) -> Order:
        """How this (arriving) version relates to a ``stored`` one."""
        if self.number is not None and stored.number is not None and self.number != stored.number:
            return NEWER if self.number > stored.number else OLDER
        if self.created is not None and stored.created is not None:
            a, b = _utc(self.created), _utc(stored.created)
            if a != b:
                return NEWER if a > b else OLDER
            return SAME
        if self.number is not None and stored.number is not None:
            return SAME  # equal numbers, no two times to tell them apart
        return UNORDERED

    def describe(self) -> str:
        parts = [f"version {self.number}" if self.number is not None else ""]
        if self.created is not None:
            parts.append(f"created {_utc(self.created).isoformat()}")
        return ", ".join(p for p in parts if p) or "no version"


def _utc(when: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes: they were stored in UTC."""
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def item_identity_hash(item_id: str, version: ItemVersion) -> str:
    """The exact-duplicate identity of one version of a self-identified item: the same item
    and version is the same document whatever its bytes (a provider re-sending version 2 with
    a reformatted body), and a new version whose text did not change (a headline correction,
    a withdrawal) is still a new row under the store's unique canonical hash."""
    created = _utc(version.created).isoformat() if version.created else ""
    number = "" if version.number is None else str(version.number)
    payload = "\x00".join(("seedworker-item-version", item_id, number, created))
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()
