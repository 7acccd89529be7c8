"""The tag stage: entities (spaCy), topics (taxonomy rules and the learned ``auto`` model),
keywords, folder and producer tags.

A :class:`Tagger` is built once per worker process (loading spaCy takes about 0.3 s and the
gazetteer about 0.3 s); :meth:`Tagger.tag` is then pure given the loaded models, and its
output is deterministic and sorted by (kind, name).

Explicit tags (folder and producer) are what the user said, and provider subjects what the
source said; everything else is derived and can be recomputed by ``seedworker tags retag``
(:meth:`Tagger.derive_many`).  The learned ``auto`` topics are the user's own labels: every
document without explicit tags gets them, whatever the rules gave (a rule's tag and the
user's label are different tags: the shipped taxonomy gives IPTC ``subject`` tags, and even
a rule ``topic`` of the same name does not hide the learned one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.errors import ConfigError
from worker.models import PROVIDER_SOURCE, NormalisedDocument, Tag, TagKind
from worker.pipeline.bounds import prefix
from worker.pipeline.entities import EntityExtractor, Gazetteer, model_name_of, shared_ner
from worker.pipeline.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from spacy.language import Language

    from worker.pipeline.classifier import TopicModel
    from worker.settings import Settings

#: Anything that turns a document into keyword tags (``PhraseKeywords`` is the shipped one).
KeywordExtractor = Callable[[NormalisedDocument], list[Tag]]

TagBatchItem = tuple[NormalisedDocument, Sequence[str], Sequence[str]]

#: Kinds the user gave (kept as they are by a retag); every other kind is derived.
EXPLICIT_KINDS: frozenset[str] = frozenset({"folder", "producer"})
AUTO_SOURCE = "auto"


def is_explicit(tag: Tag) -> bool:
    """What a retag keeps as it is: the user's folder and producer tags and the subject
    codes the input itself carried (source ``provider``)."""
    return tag.kind in EXPLICIT_KINDS or tag.source == PROVIDER_SOURCE


def is_label(tag: Tag) -> bool:
    """A tag the user gave (folder or producer): what ``auto`` learns from and what makes a
    document labelled."""
    return tag.kind in EXPLICIT_KINDS


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


@dataclass(frozen=True)
class FolderPolicy:
    """Which inbox sub-folders become tags: on/off, how many levels from the inbox down,
    renames (``pol`` -> ``politics``) and names that never become tags; case-insensitive."""

    enabled: bool = True
    depth: int = 0  # 0: every level
    mapping: Mapping[str, str] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> FolderPolicy:
        return cls(
            enabled=settings.folder_tags,
            depth=settings.folder_tag_depth,
            mapping={k.casefold(): v for k, v in settings.folder_tag_map.items()},
            ignore=frozenset(name.casefold() for name in settings.folder_tag_ignore),
        )

    def names(self, folders: Sequence[str]) -> list[str]:
        if not self.enabled:
            return []
        levels = list(folders)[: self.depth] if self.depth else list(folders)
        out = []
        for folder in levels:
            key = " ".join(folder.split()).casefold()
            if not key or key in self.ignore:
                continue
            out.append(self.mapping.get(key, folder))
        return out


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
        folders: FolderPolicy | None = None,
        auto: TopicModel | None = None,
        auto_threshold: float = 0.5,
        auto_max: int = 3,
        max_chars: int | None = None,
    ) -> None:
        self.taxonomy = taxonomy
        self.nlp = nlp
        self.keywords = keywords
        self.entities: EntityExtractor | None = None
        self.model_name = ""
        self.batch_size = batch_size
        self.folders = folders or FolderPolicy()
        self.auto = auto  # replaced by the runtime when a newer model is stored
        self.auto_threshold = auto_threshold
        self.auto_max = auto_max
        self.max_chars = max_chars
        if nlp is not None:
            self.model_name = model_name or model_name_of(nlp)
            self.entities = EntityExtractor(nlp, model_name=self.model_name, gazetteer=gazetteer, batch_size=batch_size)

    @classmethod
    def from_settings(cls, settings: Settings, *, keywords: bool | None = None) -> Tagger:
        """Taxonomy from ``taxonomy_path`` (None: the shipped one), NER from ``ner_model``
        (empty: no entities, the fast profile), keywords (worker/pipeline/keywords.py) unless turned off.
        The ``auto`` model is set later by the runtime (it lives in the database).

        Raises ConfigError for an invalid taxonomy or a pipeline that cannot be loaded.
        """
        taxonomy = load_taxonomy(settings.taxonomy_path)
        nlp = shared_ner(settings.ner_model) if settings.ner_model else None
        extractor: KeywordExtractor | None = None
        if settings.keywords if keywords is None else keywords:
            from worker.pipeline.keywords import PhraseKeywords

            extractor = PhraseKeywords()
        return cls(
            taxonomy=taxonomy,
            nlp=nlp,
            model_name=settings.ner_model,
            keywords=extractor,
            batch_size=settings.ner_batch_size,
            folders=FolderPolicy.from_settings(settings),
            auto_threshold=settings.auto_tag_threshold,
            auto_max=settings.auto_tag_max,
            max_chars=settings.tag_max_chars,
        )

    @staticmethod
    def check_settings(settings: Settings) -> None:
        """What :meth:`from_settings` would reject, checked cheaply (no model is loaded): the
        taxonomy file (every problem, with file, tag and reason) and that the NER pipeline is
        installed.  The worker runs this before forking, so a bad file stops it at start
        instead of crashing every pool process in a loop.  Raises ConfigError."""
        load_taxonomy(settings.taxonomy_path)
        if settings.ner_model:
            import spacy.util

            name = settings.ner_model
            if not spacy.util.is_package(name) and not (Path(name) / "config.cfg").is_file():
                raise ConfigError(
                    f"spaCy pipeline {name!r} is not installed (SEEDWORKER_NER_MODEL); install it "
                    "or set SEEDWORKER_NER_MODEL= (empty) to run without entities"
                )

    def describe(self) -> dict[str, Any]:
        """What this tagger will do: the worker logs it once per process (``tagger ready``)."""
        return {
            "ner_model": self.model_name or None,
            "ner_components": list(self.nlp.pipe_names) if self.nlp is not None else [],
            "ner_batch_size": self.batch_size,
            "taxonomy": self.taxonomy.source,
            "topics": len(self.taxonomy),
            "keywords": self.keywords is not None,
            "folder_tags": self.folders.enabled,
            "auto_model": self.auto.version if self.auto is not None else None,
        }

    def _wants_ner(self, doc: NormalisedDocument) -> bool:
        """NER runs on text in the pipeline's language, or of unknown language."""
        if self.entities is None or not doc.text.strip():
            return False
        return doc.language in ("und", "", self.entities.language)

    def explicit_tags(
        self, doc: NormalisedDocument, folder_tags: Sequence[str], producer_tags: Sequence[str]
    ) -> list[Tag]:
        """The tags the user gave: folders (after the folder policy) and producer tags; and
        the subject codes the input carried (:func:`provider_subjects`)."""
        tags = _plain_tags("folder", self.folders.names(folder_tags))
        tags.extend(_plain_tags("producer", [*producer_tags, *doc.producer_tags]))
        tags.extend(provider_subjects(doc))
        return tags

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
        explicit = [self.explicit_tags(doc, folders, producers) for doc, folders, producers in items]
        derived = self.derive_many([doc for doc, _, _ in items], explicit)
        return [sorted([*e, *d], key=_order) for e, d in zip(explicit, derived, strict=True)]

    def derive_many(self, docs: Sequence[NormalisedDocument], explicit: Sequence[Sequence[Tag]]) -> list[list[Tag]]:
        """The derived tags (entities, rule and auto topics, keywords) of each document, given
        its explicit tags; one ``nlp.pipe`` over the batch.  Each reads at most ``max_chars``
        of a document (worker/pipeline/bounds.py): offsets stay those of the whole text."""
        docs = [_bounded(doc, self.max_chars) for doc in docs]
        entity_tags: dict[int, list[Tag]] = {}
        if self.entities is not None:
            wanted = [i for i, doc in enumerate(docs) if self._wants_ner(doc)]
            found = self.entities.extract_many([docs[i].text for i in wanted])
            entity_tags = dict(zip(wanted, found, strict=True))
        results: list[list[Tag]] = []
        for i, doc in enumerate(docs):
            tags = list(entity_tags.get(i, []))
            # a subject the input itself carried is never given again (nor re-scored) by a rule
            carried = {t.code for t in explicit[i] if t.code}
            tags.extend(t for t in self.taxonomy.match(doc) if t.code is None or t.code not in carried)
            if self.keywords is not None:
                tags.extend(self.keywords(doc))
            results.append(tags)
        self._add_auto(docs, explicit, results)
        return [sorted(tags, key=_order) for tags in results]

    def _add_auto(
        self, docs: Sequence[NormalisedDocument], explicit: Sequence[Sequence[Tag]], results: list[list[Tag]]
    ) -> None:
        """Learned topics for every document that came without the user's labels, whatever
        the rules gave: the model answers in the user's own labels, which a rule's tag of the
        same name must not hide."""
        if self.auto is None:
            return
        todo = [i for i, doc in enumerate(docs) if not any(map(is_label, explicit[i])) and doc.text.strip()]
        if not todo:
            return
        predictions = self.auto.predict(
            [auto_text(docs[i]) for i in todo], threshold=self.auto_threshold, limit=self.auto_max
        )
        source = f"{AUTO_SOURCE}:v{self.auto.version}"
        for i, found in zip(todo, predictions, strict=True):
            results[i].extend(Tag(kind="topic", name=name, source=source, score=score) for name, score in found)


#: Where a parser puts the subject codes an input carried (ninjs ``subject``, NewsML-G2
#: ``subject qcode``): ``metadata["subjects"] = [{"name", "code", "scheme"?}, ...]``.
SUBJECTS_KEY = "subjects"


def provider_subjects(doc: NormalisedDocument) -> list[Tag]:
    """``subject`` tags (source ``provider``) for the codes the input carried, each code once;
    entries without a code are skipped, a code without a name is its own name.  The format
    parsers give ``{scheme: "medtop", code: "11000000"}``: that is the QCode ``medtop:11000000``.
    ``scheme`` defaults to the QCode alias's URI (``medtop:`` -> the IPTC Media Topics scheme)."""
    from worker.pipeline.taxonomy import scheme_uri

    raw = doc.metadata.get(SUBJECTS_KEY)
    out: dict[str, Tag] = {}
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, dict):
            continue
        name, code, scheme = entry.get("name"), entry.get("code"), entry.get("scheme")
        if not (isinstance(code, str) and code.strip()):
            continue
        code = code.strip()
        scheme = scheme.strip() if isinstance(scheme, str) else ""
        if ":" not in code and scheme and "/" not in scheme:  # the parsers' {scheme: "medtop", code: "11000000"}
            code, scheme = f"{scheme}:{code}", ""
        if not (isinstance(name, str) and name.strip()):
            name = code
        uri = scheme or scheme_uri(code)
        out.setdefault(
            code, Tag(kind="subject", name=" ".join(name.split()), source=PROVIDER_SOURCE, scheme=uri, code=code)
        )
    return list(out.values())


def _bounded(doc: NormalisedDocument, limit: int | None) -> NormalisedDocument:
    text = prefix(doc.text, limit)
    return doc if text is doc.text else doc.model_copy(update={"text": text})


def auto_text(doc: NormalisedDocument) -> str:
    """What the ``auto`` model reads: the title, then the text (the same at training time)."""
    return f"{doc.title}\n{doc.text}" if doc.title else doc.text


def is_auto(tag: Tag) -> bool:
    return tag.source == AUTO_SOURCE or tag.source.startswith(AUTO_SOURCE + ":")
