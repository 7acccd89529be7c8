"""Versions and containment, without a store: how item versions compare, what the parsers and
the normaliser take from ninjs and NewsML-G2, and the containment estimator and exact check."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from worker.pipeline.containment import (
    MIN_SHINGLES,
    containment,
    containment_band_keys,
    containment_bands,
    estimate_margin,
    estimated_containment,
    ordered_shingles,
    recall_at,
)
from worker.pipeline.dedup import DedupParams, band_keys, jaccard, shingles, signature
from worker.pipeline.normalise import normalise
from worker.pipeline.versions import (
    NEWER,
    OLDER,
    SAME,
    UNORDERED,
    ItemVersion,
    item_identity_hash,
    version_number,
    version_time,
)

T1 = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)
T2 = dt.datetime(2026, 11, 24, 11, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("raw", "number"),
    [("3", 3), (3, 3), (" v12 ", 12), ("2.1", None), ("draft", None), (None, None), (True, None), (-1, None)],
)
def test_version_numbers(raw: object, number: int | None) -> None:
    assert version_number(raw) == number  # type: ignore[arg-type]


def test_version_times_are_utc_and_bad_ones_are_none() -> None:
    assert version_time("2026-11-24T12:00:00+02:00") == dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)
    assert version_time("2026-11-24T10:00:00Z") == T1
    assert version_time("2026-11-24T10:00:00") == T1  # no offset: UTC
    assert version_time("yesterday") is None and version_time("") is None


@pytest.mark.parametrize(
    ("new", "stored", "order"),
    [
        (ItemVersion(2), ItemVersion(1), NEWER),
        (ItemVersion(1), ItemVersion(2), OLDER),
        (ItemVersion(2), ItemVersion(2), SAME),
        (ItemVersion(2, T2), ItemVersion(2, T1), NEWER),  # same number, a later time: a re-send with a fix
        (ItemVersion(2, T1), ItemVersion(2, T1), SAME),
        (ItemVersion(3, T1), ItemVersion(2, T2), NEWER),  # numbers win over times
        (ItemVersion(None, T2), ItemVersion(None, T1), NEWER),
        (ItemVersion(None, T1), ItemVersion(4, T2), OLDER),  # a number missing: the times decide
        (ItemVersion(), ItemVersion(), UNORDERED),
        (ItemVersion(2), ItemVersion(None, T1), UNORDERED),
    ],
)
def test_item_versions_compare(new: ItemVersion, stored: ItemVersion, order: str) -> None:
    assert new.compare(stored) == order


def test_naive_stored_times_compare_as_utc() -> None:
    """SQLite hands back naive datetimes: they were stored in UTC."""
    assert ItemVersion(None, T2).compare(ItemVersion(None, T1.replace(tzinfo=None))) == NEWER


def _ninjs(version: str, body: str, created: str = "2026-11-24T10:00:00Z") -> bytes:
    item = {
        "uri": "urn:example:news:2026:storm",
        "version": version,
        "versioncreated": created,
        "headline": "Storm closes harbour",
        "body_text": body,
    }
    return json.dumps(item).encode()


def test_ninjs_and_newsml_items_carry_their_id_and_version() -> None:
    doc = normalise(_ninjs("2", "The harbour closed on Tuesday as the storm arrived."), filename="a.json")
    assert (doc.item_id, doc.item_version, doc.version_created) == ("urn:example:news:2026:storm", 2, T1)
    xml = (
        b'<newsItem xmlns="http://iptc.org/std/nar/2006-10-01/" guid="urn:example:item" version="5" '
        b'standard="NewsML-G2" standardversion="2.33"><itemMeta><versionCreated>2026-11-24T11:00:00Z'
        b"</versionCreated></itemMeta><contentMeta><headline>H</headline></contentMeta><contentSet>"
        b'<inlineXML contenttype="application/xhtml+xml"><html xmlns="http://www.w3.org/1999/xhtml"><body>'
        b"<p>The harbour reopened on Wednesday.</p></body></html></inlineXML></contentSet></newsItem>"
    )
    item = normalise(xml, filename="item.xml")
    assert (item.item_id, item.item_version, item.version_created) == ("urn:example:item", 5, T2)
    plain = normalise(b"The harbour reopened on Wednesday.", filename="a.txt")
    assert (plain.item_id, plain.item_version, plain.version_created) == (None, None, None)


def test_a_versioned_item_is_identified_by_item_and_version_not_by_its_text() -> None:
    body = "The harbour closed on Tuesday as the storm arrived."
    v1, v1_again = normalise(_ninjs("1", body), filename="a.json"), normalise(_ninjs("1", body + " "), filename="b")
    v2_same_text = normalise(_ninjs("2", body), filename="a.json")
    assert v1.canonical_hash == v1_again.canonical_hash
    # A headline-only correction keeps its body: still a new row under the unique hash.
    assert v2_same_text.canonical_hash != v1.canonical_hash
    assert v1.canonical_hash == item_identity_hash("urn:example:news:2026:storm", ItemVersion(1, T1))
    unversioned = json.loads(_ninjs("1", body))
    del unversioned["version"], unversioned["versioncreated"]
    assert normalise(json.dumps(unversioned).encode(), filename="c.json").canonical_hash != v1.canonical_hash


# -- containment ----------------------------------------------------------------------------------
def _words(rng: random.Random, n: int) -> str:
    vocab = [f"w{i}" for i in range(3000)]
    return " ".join(rng.choice(vocab) for _ in range(n))


def test_containment_of_a_first_take_in_its_write_thru() -> None:
    rng = random.Random(3)
    first = _words(rng, 200)
    whole = first + " " + _words(rng, 250)
    found = containment(ordered_shingles(first, 5), frozenset(shingles(whole, 5)))
    assert found.share == 1.0 and found.weakest_part == 1.0 and found.holds(0.8)
    assert jaccard(shingles(first, 5), shingles(whole, 5)) < 0.5  # far below the near threshold


def test_containment_needs_every_third_not_only_a_shared_footer() -> None:
    rng = random.Random(4)
    footer = _words(rng, 60)
    short = _words(rng, 25) + " " + footer
    other = _words(rng, 300) + " " + footer
    found = containment(ordered_shingles(short, 5), frozenset(shingles(other, 5)))
    assert found.share > 0.6  # most of the short text is the footer...
    assert found.weakest_part < 0.5 and not found.holds(0.6)  # ...but its opening third is not inside


def test_tiny_texts_are_never_contained() -> None:
    line = "Storm closes the harbour tonight"
    found = containment(ordered_shingles(line, 5), frozenset(shingles(line + " and more words here", 5)))
    assert found.share == 1.0 and found.shingles < MIN_SHINGLES and not found.holds(0.8)


def test_estimated_containment_tracks_the_exact_share() -> None:
    params = DedupParams()
    rng = random.Random(5)
    errors = []
    for _ in range(30):
        first = _words(rng, rng.randint(80, 300))
        whole = first + " " + _words(rng, rng.randint(80, 400))
        a, b = shingles(first, 5), shingles(whole, 5)
        j = signature(first, params).similarity(signature(whole, params))
        estimate = estimated_containment(j, len(a), len(b))
        errors.append(abs(estimate - 1.0))
        assert estimate + estimate_margin(j, len(a), len(b), params.num_perm) >= 0.8
    assert sorted(errors)[len(errors) // 2] < 0.15
    assert estimated_containment(0.0, 100, 300) == 0.0 and estimated_containment(1.0, 100, 100) == 1.0


def test_containment_bands_are_three_rows_and_never_share_keys_with_the_near_bands() -> None:
    params = DedupParams()
    assert containment_bands(params) == (42, 3)
    assert recall_at(0.5, params) > 0.99 and recall_at(0.064, params) < 0.02
    sig = signature("the harbour closed on tuesday as the storm arrived over the coast", params)
    keys = containment_band_keys(sig, params)
    assert len(keys) == 42 and keys == containment_band_keys(sig, params)
    assert not {k for _, k in keys} & {k for _, k in band_keys(sig, params)}
