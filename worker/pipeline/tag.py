"""The tag stage: entities (spaCy), topics (taxonomy rules), keywords, folder and producer tags.

A :class:`Tagger` is built once per worker process (loading spaCy takes about 0.3 s and the
gazetteer about 0.3 s); :meth:`Tagger.tag` is then pure given the loaded models, and its
output is deterministic and sorted by (kind, name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from worker.models import NormalisedDocument, Tag, TagKind
from worker.pipeline.entities import EntityExtractor, Gazetteer, model_name_of, shared_ner
from worker.pipeline.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from spacy.language import Language

    from worker.settings import Settings

#: Anything that turns a document into keyword tags (``YakeKeywords`` is the shipped one).
KeywordExtractor = Callable[[NormalisedDocument], list[Tag]]

TagBatchItem = tuple[NormalisedDocument, Sequence[str], Sequence[str]]


def _order(tag: Tag) -> tuple[str, str, str, str]:
    return (tag.kind, tag.name, tag.label or "", tag.source)


def _plain_tags(kind: TagKind, names: Iterable[str]) -> list[Tag]:
    """Folder/producer tags: stripped, empty ones dropped, deduplicated case-insensitively
    (the first spelling wins)."""
    seen: dict[str, Tag] = {}
    for raw in names:
        name = " ".join(str(raw).split())
        if name and name.casefold() not in seen:
            seen[name.casefold()] = Tag(kind=kind, name=name, source=kind)
    return list(seen.values())


class Tagger:
    """Built once per worker process (loading spaCy takes ~0.3 s and ~100 MB); tag() is pure
    given the loaded models."""

    def __init__(
        self,
        *,
        taxonomy: Taxonomy,
        nlp: Language | None,
        model_name: str = "",
        keywords: KeywordExtractor | None = None,
        gazetteer: Gazetteer | None = None,
        batch_size: int = 32,
    ) -> None:
        self.taxonomy = taxonomy
        self.nlp = nlp
        self.keywords = keywords
        self.entities: EntityExtractor | None = None
        self.model_name = ""
        if nlp is not None:
            self.model_name = model_name or model_name_of(nlp)
            self.entities = EntityExtractor(nlp, model_name=self.model_name, gazetteer=gazetteer, batch_size=batch_size)

    @classmethod
    def from_settings(cls, settings: Settings, *, keywords: bool = True) -> Tagger:
        """Taxonomy from ``taxonomy_path`` (None: the shipped one), NER from ``ner_model``
        (empty: no entities, the fast profile), YAKE keywords when ``yake`` is installed.

        Raises ConfigError for an invalid taxonomy or a pipeline that cannot be loaded.
        """
        taxonomy = load_taxonomy(settings.taxonomy_path)
        nlp = shared_ner(settings.ner_model) if settings.ner_model else None
        extractor: KeywordExtractor | None = None
        if keywords:
            from worker.pipeline.keywords import YakeKeywords, yake_available

            if yake_available():
                extractor = YakeKeywords()
        return cls(taxonomy=taxonomy, nlp=nlp, model_name=settings.ner_model, keywords=extractor)

    def describe(self) -> dict[str, Any]:
        """What this tagger will do, for the start-up log and ``seedworker config``."""
        return {
            "ner_model": self.model_name or None,
            "ner_components": list(self.nlp.pipe_names) if self.nlp is not None else [],
            "taxonomy": self.taxonomy.source,
            "topics": len(self.taxonomy),
            "keywords": self.keywords is not None,
        }

    def _wants_ner(self, doc: NormalisedDocument) -> bool:
        """NER runs on text in the pipeline's language, or of unknown language."""
        if self.entities is None or not doc.text.strip():
            return False
        return doc.language in ("und", "", self.entities.language)

    def tag(
        self,
        doc: NormalisedDocument,
        *,
        folder_tags: Sequence[str] = (),
        producer_tags: Sequence[str] = (),
    ) -> list[Tag]:
        """All tags of one document, sorted by (kind, name)."""
        return self.tag_many([(doc, folder_tags, producer_tags)])[0]

    def tag_many(self, items: Sequence[TagBatchItem]) -> list[list[Tag]]:
        """Batch form: runs spaCy with nlp.pipe over all texts (the worker uses it when it
        receives batches).  ``items`` are ``(document, folder_tags, producer_tags)``."""
        entity_tags: dict[int, list[Tag]] = {}
        if self.entities is not None:
            wanted = [i for i, (doc, _, _) in enumerate(items) if self._wants_ner(doc)]
            found = self.entities.extract_many([items[i][0].text for i in wanted])
            entity_tags = dict(zip(wanted, found, strict=True))
        results = []
        for i, (doc, folder_tags, producer_tags) in enumerate(items):
            tags = list(entity_tags.get(i, []))
            tags.extend(self.taxonomy.match(doc))
            if self.keywords is not None:
                tags.extend(self.keywords(doc))
            tags.extend(_plain_tags("folder", folder_tags))
            tags.extend(_plain_tags("producer", [*producer_tags, *doc.producer_tags]))
            results.append(sorted(tags, key=_order))
        return results
