"""A document store on a test's database and the batch the pipeline would hand it, for tests
of the store, the outbox, search and the relay."""

from __future__ import annotations

import hashlib

from worker.models import FileSummary, IngestRequest, NormalisedDocument, PipelineBatch, StageItem, Tag
from worker.store.engine import make_engine
from worker.store.repository import DocumentStore


def new_store(url: str, policy: str = "link") -> DocumentStore:
    """A store with its schema created, linking (or dropping, ``policy``) duplicates."""
    store = DocumentStore(make_engine(url), event_source="urn:test", duplicate_policy=policy)
    store.create_schema()
    return store


def batch(text: str, key: str, filename: str = "a.txt") -> tuple[PipelineBatch, StageItem, bytes]:
    """One file of one document with one topic tag ``t``, as ``persist_document`` takes it: the
    document's hash is that of its lower-cased text, so two texts differing in case only are
    exact duplicates."""
    raw = text.encode()
    request = IngestRequest(text=text, filename=filename, idempotency_key=key)
    doc = NormalisedDocument(
        text=text,
        canonical_hash=hashlib.sha256(text.lower().encode()).hexdigest(),
        language="en",
        word_count=len(text.split()),
    )
    item = StageItem(document=doc, tags=[Tag(kind="topic", name="t", source="rule:t")])
    summary = FileSummary.of(filename, raw)
    return PipelineBatch(request=request, key=key, summary=summary, items=[item]), item, raw
