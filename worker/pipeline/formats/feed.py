"""RSS 2.0 and Atom feed files: one document per item or entry.

Each item's identity (for exact-duplicate detection) is its ``guid`` (Atom: ``id``), else
its link: the same item seen again in a later feed file is a duplicate of the stored one,
even when its summary was edited in between.  Content (``content:encoded``, Atom
``content``), else the description or summary, becomes text through the markup reader.
"""

from __future__ import annotations

import re
from typing import Any

from worker.errors import EmptyDocument, NoExtractableText, TooLarge
from worker.pipeline.formats.base import (
    CERTAIN,
    MAX_RECORDS,
    NO,
    Deadline,
    Format,
    Head,
    Parsed,
    Records,
    Source,
    as_line,
    xml_encoding,
    xml_root,
)
from worker.pipeline.formats.markup import element_text, html_text
from worker.pipeline.formats.xmlsafe import attribute, child, children, parse_xml, text_of

FEED = "feed"
_URI = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*://|urn:|tag:)\S", re.IGNORECASE)
_CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
_DC_NS = "http://purl.org/dc/elements/1.1/"
TIME_BUDGET_SECONDS = 120.0


def sniff(head: Head) -> float:
    """An ``<rss>`` root, or an Atom ``<feed>`` root."""
    root = xml_root(head.raw)
    if root == "rss" or (root == "feed" and b"http://www.w3.org/2005/Atom" in head.raw):
        return CERTAIN
    return NO


def parse(source: Source) -> Records:
    root = parse_xml(source.raw, "feed")
    deadline = Deadline(TIME_BUDGET_SECONDS, "feed")
    atom = str(root.tag).rsplit("}", 1)[-1] == "feed"
    channel = root if atom else child(root, "channel")
    items = children(channel, "entry" if atom else "item") if channel is not None else []
    if not items:
        raise EmptyDocument("the feed holds no items")
    if len(items) > MAX_RECORDS:
        raise TooLarge(
            f"the feed holds {len(items)} items, more than the {MAX_RECORDS} one file may hold; split it",
            limit=MAX_RECORDS,
        )
    feed_meta = {
        "feed_kind": "atom" if atom else "rss",
        "feed_title": text_of(child(channel, "title")),
        "feed_link": _atom_link(channel) if atom else text_of(child(channel, "link")),
    }
    feed_meta = {k: v for k, v in feed_meta.items() if v is not None}
    records: Records = []
    encoding = xml_encoding(source.raw)
    for number, item in enumerate(items, 1):
        deadline.check()
        try:
            parsed = (_atom_entry if atom else _rss_item)(item, dict(feed_meta))
            parsed.encoding = encoding
            records.append((number, parsed))
        except NoExtractableText as error:
            records.append((number, error))
    return records


def _rss_item(item: Any, meta: dict[str, Any]) -> Parsed:
    content = _ns_child(item, _CONTENT_NS, "encoded")
    body = html_text(content.text or "") if content is not None else ""
    if not body:
        body = html_text(text_of_raw(child(item, "description")))
    title = text_of(child(item, "title"))
    if not body:
        raise NoExtractableText("the feed item has no content or description text", title=title)
    parsed = Parsed(FEED, body, title=as_line(title))
    link, guid = text_of(child(item, "link")), text_of(child(item, "guid"))
    parsed.date_raw = text_of(child(item, "pubDate")) or text_of(_ns_child(item, _DC_NS, "date"))
    parsed.author = text_of(_ns_child(item, _DC_NS, "creator")) or _rss_author(text_of(child(item, "author")))
    parsed.tags = _tags([text_of(c) for c in children(item, "category")])
    parsed.identity = _identity(guid, link, meta.get("feed_link") or meta.get("feed_title"))
    meta.update({k: v for k, v in (("url", link), ("guid", guid)) if v})
    parsed.metadata = meta
    return parsed


def _atom_entry(entry: Any, meta: dict[str, Any]) -> Parsed:
    body = ""
    for name in ("content", "summary"):
        element = child(entry, name)
        if element is None:
            continue
        kind = (attribute(element, "type") or "text").lower()
        if kind == "xhtml":
            body = element_text(element)
        elif "html" in kind:
            body = html_text(element.text or "")
        else:
            body = (element.text or "").strip()
        if body:
            break
    title = text_of(child(entry, "title"))
    if not body:
        raise NoExtractableText("the feed entry has no content or summary text", title=title)
    parsed = Parsed(FEED, body, title=as_line(title))
    link, entry_id = _atom_link(entry), text_of(child(entry, "id"))
    parsed.date_raw = text_of(child(entry, "published")) or text_of(child(entry, "updated"))
    authors = [text_of(child(a, "name")) for a in children(entry, "author")]
    parsed.author = ", ".join(a for a in authors if a) or None
    parsed.tags = _tags([attribute(c, "label") or attribute(c, "term") for c in children(entry, "category")])
    parsed.identity = _identity(entry_id, link, meta.get("feed_link") or meta.get("feed_title"))
    meta.update({k: v for k, v in (("url", link), ("guid", entry_id)) if v})
    parsed.metadata = meta
    return parsed


def _rss_author(value: str | None) -> str | None:
    """RSS's ``news@example.com (Ana Lima)`` -> ``Ana Lima``."""
    named = re.fullmatch(r"\S+@\S+\s*\((.+)\)", value or "")
    return named[1].strip() if named else value


def text_of_raw(element: Any | None) -> str:
    """An element's own text (escaped HTML in RSS descriptions), or ""."""
    return "" if element is None else "".join(element.itertext())


def _ns_child(element: Any, namespace: str, name: str) -> Any | None:
    return element.find(f"{{{namespace}}}{name}")


def _atom_link(element: Any) -> str | None:
    links = children(element, "link")
    for link in links:
        if (attribute(link, "rel") or "alternate") == "alternate" and attribute(link, "href"):
            return attribute(link, "href")
    return attribute(links[0], "href") if links else None


def _identity(guid: str | None, link: str | None, scope: str | None) -> str | None:
    """A guid that is a URI (``https://...``, ``urn:...``, ``tag:...``) names the item
    worldwide; a bare one (``1234``) only within its feed, so it is scoped by the feed's own
    link or title: two publishers' item "1" are not one story."""
    if guid:
        worldwide = _URI.match(guid) is not None
        return f"feed-item:{guid}" if worldwide else f"feed-item:{scope or ''}|{guid}"
    return f"feed-item:{link}" if link else None


def _tags(values: list[str | None]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v and len(v) <= 100))[:100]


FORMAT = Format(
    name=FEED,
    label="RSS 2.0 / Atom feed (`feed`)",
    sniff=sniff,
    parse=parse,
    extensions=(".rss", ".atom"),
    reads_bytes=True,
    record_name="item",
    recognised="an XML root `rss`, or `feed` in the Atom namespace, whatever the extension; `.rss`, `.atom`",
    fields="one record per item/entry: title → title; content:encoded/content, else description/summary → text"
    " (HTML read as text); pubDate/published → date; author/dc:creator → author; categories → tags; link → url;"
    " guid/id (else link) → exact-duplicate identity",
    failures=("invalid_xml", "unsafe_xml", "empty", "no_text_extracted", "too_large", "too_slow"),
)
