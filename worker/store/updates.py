"""Updates: a new version of a stored story, by the item's own id or by containment.

Two ways a document becomes an update of a stored one (docs/dedup.md, "Updates"):

* **By id** (ninjs ``uri``, NewsML-G2 ``guid``): the newest stored version of the same item
  is found by ``documents.item_id``; a newer ``version``/``versioncreated`` is an update, the
  same or an older one a duplicate of the newest (an older version arriving late never
  replaces the newer).  On PostgreSQL a transaction-scoped advisory lock on the item id
  serialises two versions of one item arriving together.
* **By containment** (text, HTML, email: no id): a longer text that contains a stored shorter
  one is its write-thru (``worker/store/writethru_index.py``, which needs MinHash and is
  imported only by the worker and the CLI, never by readers of the store).

Either way the update is a new ``documents`` row in the story of the version it updates,
with ``updates`` naming that version and ``version`` one more than its; the event is
``document.updated``.  Stored rows are never changed: the newest versions of a story are the
rows that no other row ``updates`` (``newest_only``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Select, bindparam, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from worker.events.cloudevents import DocumentUpdatedData, TagData
from worker.pipeline.versions import NEWER, OLDER, UNORDERED, ItemVersion, Order
from worker.store.schema import Document, story_for, table_of

if TYPE_CHECKING:
    from worker.models import NormalisedDocument
    from worker.store.decision import DuplicateMatch

_ITEM_LOCK_NAMESPACE = 0x5EEE  # beside near_index's 0x5EED: item ids, not band keys

_DOCUMENTS = table_of(Document)
_ADVISORY_LOCK = select(func.pg_advisory_xact_lock(_ITEM_LOCK_NAMESPACE, bindparam("key")))
_SELECT_ITEM = (
    select(
        _DOCUMENTS.c.id,
        _DOCUMENTS.c.version,
        _DOCUMENTS.c.item_version,
        _DOCUMENTS.c.version_created,
        _DOCUMENTS.c.story_id,
    )
    .where(_DOCUMENTS.c.item_id == bindparam("item_id"))
    .order_by(_DOCUMENTS.c.version.desc(), _DOCUMENTS.c.created_at.desc())
    .limit(1)
)


@dataclass(frozen=True)
class Update:
    """What a new version updates: the previous version, its story, and how it was matched."""

    previous_id: str
    previous_version: int
    story_id: str
    how: Literal["item_version", "containment"]
    containment: float | None = None  # the confirmed share of the previous version inside the new one

    @property
    def version(self) -> int:
        return self.previous_version + 1


@dataclass(frozen=True)
class ItemMatch:
    """The newest stored version of an item, and how an arriving version compares with it."""

    document_id: str
    version: int
    story_id: str
    stored: ItemVersion
    order: Order

    def as_update(self) -> Update:
        return Update(self.document_id, self.version, self.story_id, "item_version")


def lock_item(s: Session, item_id: str) -> None:
    """PostgreSQL: serialise with every transaction storing a version of the same item."""
    if s.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(item_id.encode("utf-8", "surrogatepass")) - (1 << 31)
        s.connection().execute(_ADVISORY_LOCK, {"key": key})


def newest_of_item(s: Session, doc: NormalisedDocument) -> ItemMatch | None:
    """The newest stored version of ``doc``'s item and how ``doc`` compares with it (None for a
    document without an item id, or an item never stored)."""
    if not doc.item_id:
        return None
    row = s.connection().execute(_SELECT_ITEM, {"item_id": doc.item_id}).first()
    if row is None:
        return None
    stored = ItemVersion(row.item_version, row.version_created)
    order = ItemVersion(doc.item_version, doc.version_created).compare(stored)
    return ItemMatch(row.id, int(row.version or 1), row.story_id or story_for(row.id), stored, order)


def is_update(match: ItemMatch) -> bool:
    """A newer version, or (neither version numbered nor timed) a different text in arrival order."""
    return match.order in (NEWER, UNORDERED)


def duplicate_reason(match: ItemMatch) -> str:
    return "older_version" if match.order == OLDER else "same_version"


def newest_only(query: Select[Any]) -> Select[Any]:
    """Only the newest version of each story: rows that no other row ``updates``."""
    later = aliased(Document)
    return query.where(~exists().where(later.updates == Document.id))


def unlink_deleted(s: Session, doc_id: str, previous: str | None) -> None:
    """A deleted version's successors now update the version it updated (the chain stays whole)."""
    s.execute(update(Document).where(Document.updates == doc_id).values(updates=previous))


# -- the written rows and events of versions -------------------------------------------------------
def version_columns(doc: NormalisedDocument, update: Update | None) -> dict[str, Any]:
    """The row's place in its story, and the provider's item id and version."""
    return {
        "version": update.version if update else 1,
        "updates": update.previous_id if update else None,
        "item_id": doc.item_id,
        "item_version": doc.item_version,
        "version_created": doc.version_created,
    }


def updated_data(
    doc: NormalisedDocument, update: Update, tags: list[TagData], fields: dict[str, Any]
) -> DocumentUpdatedData:
    return DocumentUpdatedData(
        tags=tags,
        updates=update.previous_id,
        version=update.version,
        previous_version=update.previous_version,
        match=update.how,
        containment=round(update.containment, 4) if update.containment is not None else None,
        item_id=doc.item_id,
        item_version=doc.item_version,
        **fields,
    )


def duplicate_item_fields(doc: NormalisedDocument | None, match: DuplicateMatch) -> dict[str, Any]:
    """A versioned item's duplicate says why (same or older version) and which version it was."""
    if doc is None or match.reason is None:
        return {}
    return {"reason": match.reason, "item_id": doc.item_id, "item_version": doc.item_version}
