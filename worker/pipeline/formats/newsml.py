"""IPTC NewsML-G2: a ``newsItem``, or a ``newsMessage`` whose ``itemSet`` holds several
items (each its own document and outcome, like the lines of a JSON Lines file).

Read with the hardened XML reader (``xmlsafe``): entity declarations and external
references are refused as ``unsafe_xml``, never expanded.  The body is the XHTML of
``contentSet/inlineXML`` (or the text of ``inlineData``); packages (``packageItem``) and
``remoteContent`` references are not followed.
"""

from __future__ import annotations

from typing import Any

from worker.errors import EmptyDocument, MissingText, TooLarge
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
    byline_name,
    xml_encoding,
    xml_root,
)
from worker.pipeline.formats.markup import element_text
from worker.pipeline.formats.provider import (
    MAX_CODES,
    embargo_time,
    primary_genre,
    status_word,
    subject_code,
    urgency_level,
)
from worker.pipeline.formats.xmlsafe import attribute, child, children, parse_xml, text_of

NEWSML = "newsml"
_NAMESPACE = b"iptc.org/std/nar/"
_ROOTS = ("newsItem", "newsMessage")
TIME_BUDGET_SECONDS = 60.0


def sniff(head: Head) -> float:
    """A ``newsItem`` or ``newsMessage`` root in the NewsML-G2 namespace."""
    return CERTAIN if xml_root(head.raw) in _ROOTS and _NAMESPACE in head.raw else NO


def parse(source: Source) -> Parsed | Records:
    root = parse_xml(source.raw, "NewsML-G2 document")
    deadline = Deadline(TIME_BUDGET_SECONDS, "NewsML-G2 document")
    name = _local(root)
    if name == "newsItem":
        return _item(root, xml_encoding(source.raw))
    if name != "newsMessage":
        raise MissingText(f"the NewsML-G2 document's root is <{name}>, not a newsItem or newsMessage")
    items = [item for item_set in children(root, "itemSet") for item in children(item_set, "newsItem")]
    if not items:
        raise EmptyDocument("the NewsML-G2 newsMessage holds no newsItem")
    if len(items) > MAX_RECORDS:
        raise TooLarge(
            f"the NewsML-G2 newsMessage holds {len(items)} items, more than the {MAX_RECORDS} one file may hold",
            limit=MAX_RECORDS,
        )
    records: Records = []
    for number, item in enumerate(items, 1):
        deadline.check()
        try:
            records.append((number, _item(item, xml_encoding(source.raw))))
        except (MissingText, EmptyDocument) as error:
            records.append((number, error))
    return records


def _local(element: Any) -> str:
    return str(element.tag).rsplit("}", 1)[-1]


def _item(item: Any, encoding: str) -> Parsed:
    guid = attribute(item, "guid")
    meta_el, content_meta = child(item, "itemMeta"), child(item, "contentMeta")
    body, body_kind = _body(child(item, "contentSet"))
    if not body:
        raise MissingText(
            f"the newsItem {guid or ''} has no inlineXML or inlineData text in its contentSet".replace("  ", " "),
            guid=guid,
        )
    parsed = Parsed(NEWSML, body, encoding=encoding)
    content = content_meta if content_meta is not None else item  # contentMeta is required; be lenient
    headlines = children(content, "headline")
    main = next((h for h in headlines if (attribute(h, "role") or "main").endswith("main")), None)
    parsed.title = text_of(main if main is not None else (headlines[0] if headlines else None))
    parsed.author = byline_name(text_of(child(content, "by"))) or _creators(content)
    parsed.language = attribute(child(content, "language"), "tag") or attribute(item, "lang")
    parsed.located = text_of(
        child(child(content, "located"), "name") if child(content, "located") is not None else None
    )
    parsed.dateline_raw = text_of(child(content, "dateline"))
    first = text_of(child(meta_el, "firstCreated")) if meta_el is not None else None
    version_created = text_of(child(meta_el, "versionCreated")) if meta_el is not None else None
    parsed.date_raw = first or version_created or text_of(child(content, "contentCreated"))
    parsed.metadata = _metadata(item, meta_el, content, headlines, body_kind, version_created, first)
    parsed.urgency = parsed.metadata.get("urgency")
    parsed.pubstatus = parsed.metadata.get("pubstatus")
    parsed.genre = primary_genre(parsed.metadata.get("genres", []))
    parsed.embargoed = embargo_time(parsed.metadata.get("embargoed"), parsed.warnings)
    parsed.item_id, parsed.item_version, parsed.version_created = guid, attribute(item, "version"), version_created
    return parsed


def _body(content_set: Any) -> tuple[str, str]:
    if content_set is None:
        return "", ""
    for inline in children(content_set, "inlineXML"):
        if text := element_text(inline):
            return text, "xhtml"
    for inline in children(content_set, "inlineData"):
        if text := (inline.text or "").strip():
            return text, "text"
    return "", ""


def _creators(content: Any) -> str | None:
    names = [text_of(child(c, "name")) or attribute(c, "literal") for c in children(content, "creator")]
    return ", ".join(n for n in names if n) or None


def _codes(content: Any, name: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for element in children(content, name)[:MAX_CODES]:
        found = subject_code(
            code=attribute(element, "qcode"), uri=attribute(element, "uri"), name=text_of(child(element, "name"))
        )
        if found and found not in out:
            out.append(found)
    return out


def _metadata(
    item: Any,
    meta_el: Any,
    content: Any,
    headlines: list[Any],
    body_kind: str,
    version_created: str | None,
    first_created: str | None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"provider_format": "newsml-g2", "body_format": body_kind}
    values = {
        "uri": attribute(item, "guid"),
        "version": attribute(item, "version"),
        "versioncreated": version_created,
        "firstcreated": first_created,
        "embargoed": text_of(child(meta_el, "embargoed")) if meta_el is not None else None,
        "pubstatus": status_word(attribute(child(meta_el, "pubStatus"), "qcode")) if meta_el is not None else None,
        "urgency": urgency_level(text_of(child(content, "urgency"))),
        "located": text_of(child(child(content, "located"), "name")) if child(content, "located") is not None else None,
        "slugline": text_of(child(content, "slugline")),
        "subheadline": next((text_of(h) for h in headlines if (attribute(h, "role") or "").endswith("sub")), None),
    }
    meta.update({k: v for k, v in values.items() if v is not None})
    rights = child(item, "rightsInfo")
    if rights is not None:
        for key, element in (
            ("copyrightholder", "copyrightHolder"),
            ("copyrightnotice", "copyrightNotice"),
            ("usageterms", "usageTerms"),
        ):
            found = child(rights, element)
            value = (
                text_of(child(found, "name")) if element == "copyrightHolder" and found is not None else text_of(found)
            )
            if value:
                meta[key] = value
    if subjects := _codes(content, "subject"):
        meta["subjects"] = subjects
    if genres := _codes(content, "genre"):
        meta["genres"] = genres
    return meta


FORMAT = Format(
    name=NEWSML,
    label="IPTC NewsML-G2 (`newsml`)",
    sniff=sniff,
    parse=parse,
    extensions=(),
    reads_bytes=True,
    record_name="item",
    recognised="an XML root `newsItem` or `newsMessage` in the NewsML-G2 namespace, whatever the extension",
    fields="contentMeta headline → title; by (else creator) → author; firstCreated, else versionCreated → date;"
    " language; located, dateline → dateline; inlineXML XHTML (or inlineData) → text; urgency, pubStatus,"
    " embargoed, the first genre → their own fields; subject and genre qcodes, rightsInfo → metadata; guid,"
    " version, versionCreated → the item's id and version (a newer version is an update, docs/dedup.md);"
    " a newsMessage → one record per newsItem",
    failures=("invalid_xml", "unsafe_xml", "missing_text", "empty", "too_large", "too_slow"),
)
