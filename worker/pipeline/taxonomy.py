"""Topic rules: loading and validating taxonomy files, and the rule matchers.

A taxonomy file (TOML, or YAML by extension ``.yaml``/``.yml``) holds one table per topic::

    [tags.politics]
    match = ["election", "president", "parliament*"]
    algorithm = "any"            # any | all | literal | regex | fuzzy
    case_sensitive = false
    fields = ["title", "text"]   # optional, default both
    min_count = 1                # optional: matches needed before the topic is given
    min_score = 0.85             # fuzzy only
    description = "..."          # optional, for people reading the file
    code = "medtop:11000000"     # optional: the IPTC Media Topic (any QCode) the topic stands for

A rule with a ``code`` gives a ``subject`` tag (scheme URI + QCode, so it joins with any
IPTC-based system and cannot be mistaken for the user's own labels); without one, a
``topic`` tag.  The shipped news taxonomy codes every topic.

The algorithms follow the document managers' matching (paperless-ngx):

* ``any`` -- any of the terms, each matched as whole words;
* ``all`` -- every one of the terms, each as whole words;
* ``literal`` -- the exact phrase (or any of the phrases when ``match`` is a list);
* ``regex`` -- a Python regular expression (or any of several), compiled at load;
* ``fuzzy`` -- rapidfuzz similarity of a term against windows of the text's words of about
  the term's length, at least ``min_score`` (0..1, default 0.85).

For ``any`` and ``all`` a term may be a phrase (``"white house"``; any run of whitespace in
the text matches its spaces), and a trailing ``*`` matches any word ending
(``"elect*"`` = elect, elected, election, electoral, ...).  When ``match`` is one string for
``any``/``all`` it is split into terms on whitespace, with ``"quoted phrases"`` kept whole.

Every problem in a file is reported at load as a :class:`ConfigError` naming the file, the
tag and the reason; nothing is checked lazily at match time.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from worker.errors import ConfigError
from worker.models import NormalisedDocument, Tag
from worker.pipeline.termmatch import (
    TOKEN,
    FuzzyFinder,
    Gate,
    Words,
    literal_atoms,
    regex_finder,
    term_atoms,
    whole_words,
)
from worker.pipeline.termscan import TermFinder, TermScanner

DEFAULT_TAXONOMY = Path(__file__).resolve().parent.parent / "data" / "taxonomy.toml"
#: QCode aliases and the scheme URIs they stand for (NewsML-G2's catalog alias ``medtop``).
SCHEME_URIS: dict[str, str] = {
    "medtop": "http://cv.iptc.org/newscodes/mediatopic/",
    "subj": "http://cv.iptc.org/newscodes/subjectcode/",
}
MAX_SPANS = 20
DEFAULT_FUZZY_SCORE = 0.85

Algorithm = Literal["any", "all", "literal", "regex", "fuzzy"]
FieldName = Literal["title", "text"]
ALL_FIELDS: tuple[FieldName, ...] = ("title", "text")

_TAG_NAME = re.compile(r"^[^\s\x00-\x1f](?:[^\x00-\x1f]{0,98}[^\s\x00-\x1f])?$")


# -- schema ------------------------------------------------------------------------------------


class RuleSpec(BaseModel):
    """One topic's rule, as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: list[str] | str
    algorithm: Algorithm = "any"
    case_sensitive: bool = False
    fields: list[FieldName] = Field(default_factory=lambda: list(ALL_FIELDS), min_length=1)
    min_count: int = Field(1, ge=1, le=1000)
    min_score: float | None = Field(None, gt=0, le=1)
    description: str | None = None
    #: A controlled-vocabulary term this topic stands for, as a QCode (``medtop:11000000``):
    #: the rule then gives a ``subject`` tag carrying scheme and code instead of a ``topic``.
    code: str | None = Field(None, pattern=r"^[a-z][a-z0-9-]{0,30}:[A-Za-z0-9_.-]{1,60}$")

    @field_validator("fields")
    @classmethod
    def _unique_fields(cls, value: list[FieldName]) -> list[FieldName]:
        if len(set(value)) != len(value):
            raise ValueError("fields must not repeat")
        return value

    @model_validator(mode="after")
    def _check(self) -> RuleSpec:
        if self.min_score is not None and self.algorithm != "fuzzy":
            raise ValueError("min_score is only valid with algorithm = 'fuzzy'")
        terms = self.terms()
        if not terms:
            raise ValueError("match must hold at least one non-empty term")
        for term in terms:
            if self.algorithm in ("any", "all", "fuzzy") and "*" in term.rstrip("*"):
                raise ValueError(f"term {term!r}: '*' is only allowed at the end of a term")
            if self.algorithm in ("any", "all") and not term.rstrip("*").strip():
                raise ValueError(f"term {term!r} has nothing to match besides '*'")
            if self.algorithm == "fuzzy" and not TOKEN.search(term):
                raise ValueError(f"fuzzy term {term!r} has no letters or digits")
        return self

    def terms(self) -> list[str]:
        """The terms after splitting a single string (any/all) and dropping empty ones."""
        if isinstance(self.match, str):
            if self.algorithm in ("any", "all"):
                raw = [q or w for q, w in re.findall(r'"([^"]+)"|(\S+)', self.match)]
            else:
                raw = [self.match]
        else:
            raw = list(self.match)
        if self.algorithm == "regex":
            return [t for t in raw if t]
        return [" ".join(t.split()) for t in raw if t.strip()]


class TaxonomyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: dict[str, RuleSpec] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _names(cls, value: dict[str, RuleSpec]) -> dict[str, RuleSpec]:
        for name in value:
            if not _TAG_NAME.match(name):
                raise ValueError(
                    f"tag name {name!r} must be 1 to 100 characters without control "
                    "characters or surrounding whitespace"
                )
        return value


# -- matching ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleMatch:
    field: FieldName
    start: int
    end: int
    text: str
    score: float = 1.0


#: One rule's matches from the scanner: field -> the rule's finder index -> spans.
_Scanned = Mapping[str, Mapping[int, list[tuple[int, int]]]]


class _Problem(Exception):
    """A rule that validated as data but cannot be compiled (bad regex, ...)."""


@dataclass(frozen=True)
class Rule:
    """A compiled rule for one topic tag."""

    name: str
    spec: RuleSpec
    _finders: tuple[Callable[[str], list[tuple[int, int, float]]], ...] = field(repr=False)
    # One per finder: the words a text must contain for the finder to match at all, or None
    # (always run it).  Taxonomy.match checks them against the document's words first.
    _gates: tuple[Gate | None, ...] = field(repr=False)

    @classmethod
    def compile(cls, name: str, spec: RuleSpec) -> Rule:
        flags = 0 if spec.case_sensitive else re.IGNORECASE
        terms = spec.terms()
        finders: list[Callable[[str], list[tuple[int, int, float]]]]
        gates: list[Gate | None]
        if spec.algorithm == "any":
            pattern = whole_words(terms, term_atoms, flags)
            finders = [regex_finder(re.compile(pattern, flags))]
            gates = [Gate.of(terms, wildcards=True, case_sensitive=spec.case_sensitive)]
        elif spec.algorithm == "all":
            finders = [regex_finder(re.compile(whole_words([t], term_atoms, flags), flags)) for t in terms]
            gates = [Gate.of([t], wildcards=True, case_sensitive=spec.case_sensitive) for t in terms]
        elif spec.algorithm == "literal":
            pattern = whole_words(terms, literal_atoms, flags)
            finders = [regex_finder(re.compile(pattern, flags))]
            gates = [Gate.of(terms, wildcards=False, case_sensitive=spec.case_sensitive)]
        elif spec.algorithm == "regex":
            finders = []
            for pattern in terms:
                try:
                    compiled = re.compile(pattern, flags)
                except re.error as exc:
                    raise _Problem(f"invalid regex {pattern!r}: {exc}") from exc
                if compiled.fullmatch(""):
                    raise _Problem(f"regex {pattern!r} matches the empty string")
                finders.append(regex_finder(compiled))
        else:
            cutoff = 100.0 * (spec.min_score or DEFAULT_FUZZY_SCORE)
            finders = [FuzzyFinder(t, cutoff, spec.case_sensitive) for t in terms]
        if spec.algorithm in ("regex", "fuzzy"):
            gates = [None] * len(finders)
        return cls(name=name, spec=spec, _finders=tuple(finders), _gates=tuple(gates))

    def find(
        self, title: str | None, text: str, words: Words | None = None, scanned: _Scanned | None = None
    ) -> list[RuleMatch]:
        """Every match in the configured fields, in field order then position; [] if none.

        ``all`` returns [] unless every term matched somewhere in the fields.  With ``words``
        (the document's, from :class:`Taxonomy.match`) a finder whose gate says it cannot
        match a field is not run on it; the result is the same.  With ``scanned`` (this
        rule's finders' matches per field, from the taxonomy's one-pass scanner) no finder
        runs at all; the result is the same again (tests/unit/test_taxonomy.py).
        """
        sources = {"title": title or "", "text": text}
        cased = self.spec.case_sensitive
        per_finder: list[list[RuleMatch]] = []
        for i, (finder, gate) in enumerate(zip(self._finders, self._gates, strict=True)):
            if scanned is not None:
                found = [
                    RuleMatch(fld, s, e, sources[fld][s:e])
                    for fld in self.spec.fields
                    for s, e in scanned.get(fld, {}).get(i, ())
                ]
            else:
                found = [
                    RuleMatch(fld, s, e, sources[fld][s:e], score)
                    for fld in self.spec.fields
                    if gate is None or words is None or gate.may_match(words.of(fld, sources[fld], cased))
                    for s, e, score in finder(sources[fld])
                ]
            if self.spec.algorithm == "all" and not found:
                return []
            per_finder.append(found)
        order = {fld: i for i, fld in enumerate(self.spec.fields)}
        merged = {(m.field, m.start, m.end): m for found in per_finder for m in found}
        return sorted(merged.values(), key=lambda m: (order[m.field], m.start, m.end))

    def apply(self, doc: NormalisedDocument, words: Words | None = None, scanned: _Scanned | None = None) -> Tag | None:
        if scanned is not None:
            return self._apply_scanned(doc, scanned)
        matches = self.find(doc.title, doc.text, words, scanned)
        if len(matches) < self.spec.min_count:
            return None
        spans = sorted((m.start, m.end) for m in matches if m.field == "text")[:MAX_SPANS]
        score = 1.0
        if self.spec.algorithm == "fuzzy":
            score = round(max(m.score for m in matches), 4)
        code = self.spec.code
        return Tag(
            kind="subject" if code else "topic",
            name=self.name,
            source=f"rule:{self.name}",
            scheme=scheme_uri(code) if code else None,
            code=code,
            score=score,
            count=len(matches),
            spans=spans,
            matched=matches[0].text,
        )

    def _apply_scanned(self, doc: NormalisedDocument, scanned: _Scanned) -> Tag | None:
        """``apply`` given the scanner's matches of a term rule (never fuzzy): the same tag,
        from (field, start, end) tuples instead of ``find``'s RuleMatch objects."""
        spec = self.spec
        fields = spec.fields
        per_field = [scanned.get(fld, {}) for fld in fields]
        if spec.algorithm == "all" and not all(
            any(found.get(i) for found in per_field) for i in range(len(self._finders))
        ):
            return None
        unique = {(order, s, e) for order, found in enumerate(per_field) for spans in found.values() for s, e in spans}
        if not unique or len(unique) < spec.min_count:
            return None
        ordered = sorted(unique)
        order, start, end = ordered[0]
        first_field = fields[order]
        matched = (doc.title or "" if first_field == "title" else doc.text)[start:end]
        spans = [(s, e) for o, s, e in ordered if fields[o] == "text"][:MAX_SPANS]
        code = spec.code
        return Tag(
            kind="subject" if code else "topic",
            name=self.name,
            source=f"rule:{self.name}",
            scheme=scheme_uri(code) if code else None,
            code=code,
            score=1.0,
            count=len(unique),
            spans=spans,
            matched=matched,
        )


def scheme_uri(qcode: str) -> str:
    """The scheme URI of a QCode (``medtop:11000000`` -> the Media Topics URI); an alias we
    do not know stands for itself."""
    alias = qcode.split(":", 1)[0]
    return SCHEME_URIS.get(alias, alias)


def matched_terms(rule: Rule, title: str | None, text: str) -> list[tuple[str, int]]:
    """Each distinct text the rule matched in the document with how often it matched,
    most frequent first (then in order of first match): the evidence ``tags explain``
    shows.  The counts add up to the tag's ``count``; texts that differ only in case are
    one entry for a case-insensitive rule (spelt as first seen)."""
    counts: dict[str, int] = {}
    spelling: dict[str, str] = {}
    for m in rule.find(title, text):
        key = m.text if rule.spec.case_sensitive else m.text.casefold()
        spelling.setdefault(key, m.text)
        counts[key] = counts.get(key, 0) + 1
    order = {key: i for i, key in enumerate(counts)}
    return [(spelling[k], n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], order[kv[0]]))]


def explain_rule_tag(tag: Tag, rule: Rule | None, title: str | None, text: str) -> dict[str, Any]:
    """Why a rule gave ``tag``, as data: the rule (every term), and each matched text with
    its own count (``rule 'diplomacy' (any) matched 'allies' (1x), 'sanctions' (4x)``).
    ``rule`` None: the rule is no longer in the taxonomy."""
    out: dict[str, Any] = {"rule": tag.name}
    if rule is None:
        out["note"] = "the rule is no longer in the taxonomy (retag to remove it)"
        out["text"] = f"rule {tag.name!r} matched {tag.matched!r} ({tag.count} match(es) in all)"
        return out
    spec = rule.spec
    found = matched_terms(rule, title, text)
    out.update(
        algorithm=spec.algorithm,
        case_sensitive=spec.case_sensitive,
        min_count=spec.min_count,
        terms=spec.terms(),
        matches=[{"text": t, "count": n} for t, n in found],
    )
    if spec.code:
        out["code"] = spec.code
    how = f" ({spec.algorithm}{', case-sensitive' if spec.case_sensitive else ''})"
    evidence = ", ".join(f"{t!r} ({n}x)" for t, n in found) or f"{tag.matched!r} ({tag.count}x)"
    out["text"] = f"rule {tag.name!r}{how} matched {evidence}"
    return out


# -- the taxonomy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Taxonomy:
    """The compiled rules of one taxonomy file; ``match`` is pure and deterministic."""

    rules: tuple[Rule, ...] = ()
    source: str = "<empty>"
    # The finders of every any/all/literal rule, in one scanner; per rule, the scanner's index
    # of its first finder (None: a regex or fuzzy rule, whose finders run on their own).
    _scanner: TermScanner = field(init=False, repr=False, compare=False)
    _first_finder: tuple[int | None, ...] = field(init=False, repr=False, compare=False)
    _rule_of: tuple[int, ...] = field(init=False, repr=False, compare=False)  # scanner finder -> rule

    def __post_init__(self) -> None:
        finders: list[TermFinder] = []
        first: list[int | None] = []
        rule_of: list[int] = []
        for r, rule in enumerate(self.rules):
            spec = rule.spec
            if spec.algorithm not in ("any", "all", "literal"):
                first.append(None)
                continue
            first.append(len(finders))
            literal, cased, terms = spec.algorithm == "literal", spec.case_sensitive, spec.terms()
            groups = [(t,) for t in terms] if spec.algorithm == "all" else [tuple(terms)]
            finders.extend(TermFinder(group, literal, cased) for group in groups)
            rule_of.extend([r] * len(groups))
        object.__setattr__(self, "_scanner", TermScanner(finders))
        object.__setattr__(self, "_rule_of", tuple(rule_of))
        object.__setattr__(self, "_first_finder", tuple(first))

    @classmethod
    def empty(cls) -> Taxonomy:
        return cls()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<memory>") -> Taxonomy:
        """Validate and compile already-parsed file content; problems raise ConfigError."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: the top level must be a table/mapping, not {type(data).__name__}")
        problems: list[str] = []
        try:
            specs = dict(TaxonomyFile.model_validate(dict(data)).tags)
        except ValidationError as exc:
            problems.extend(_describe(source, exc))
            # the rules that are valid on their own still get compiled, so one start
            # reports a bad regex next to a misspelt key
            specs = {}
            raw_tags = data.get("tags")
            for name, raw in raw_tags.items() if isinstance(raw_tags, Mapping) else []:
                try:
                    specs[str(name)] = RuleSpec.model_validate(raw)
                except ValidationError:
                    continue  # described above
        rules = []
        for name in sorted(specs):
            try:
                rules.append(Rule.compile(name, specs[name]))
            except _Problem as exc:
                problems.append(f"{source}: tag {name!r}: {exc}")
        if problems:
            raise ConfigError("invalid taxonomy:\n" + "\n".join(problems))
        return cls(rules=tuple(rules), source=source)

    @property
    def names(self) -> list[str]:
        return [rule.name for rule in self.rules]

    def __len__(self) -> int:
        return len(self.rules)

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def match(self, doc: NormalisedDocument) -> list[Tag]:
        """Topic tags for ``doc``, sorted by name: the term rules from one pass of the scanner
        over each field, the regex and fuzzy rules by their own finders."""
        words = Words()
        # per rule: field -> the rule's own finder index -> spans
        scanned: list[dict[str, dict[int, list[tuple[int, int]]]]] = [{} for _ in self.rules]
        for fld, value in (("title", doc.title or ""), ("text", doc.text)):
            for i, spans in self._scanner.scan(value).items():
                r = self._rule_of[i]
                scanned[r].setdefault(fld, {})[i - self._first_finder[r]] = spans  # type: ignore[operator]
        tags = []
        for r, rule in enumerate(self.rules):
            found = scanned[r] if self._first_finder[r] is not None else None
            if found == {}:  # a term rule the scanner found nothing of: no tag (min_count >= 1)
                continue
            if (tag := rule.apply(doc, words, found)) is not None:
                tags.append(tag)
        return tags


def _describe(source: str, exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
            loc = loc[:-1]
        if len(loc) >= 2 and loc[0] == "tags":
            where = f"tag {loc[1]!r}" + (f": {'.'.join(loc[2:])}" if len(loc) > 2 else "")
        else:
            where = ".".join(loc) or "top level"
        got = error.get("input")
        if error["type"] != "extra_forbidden" and isinstance(got, str | int | float | bool):
            message += f" (got {got!r})"
        lines.append(f"{source}: {where}: {message}")
    return lines


def load_taxonomy(path: Path | None) -> Taxonomy:
    """Load, validate and compile a taxonomy file; ``None`` loads the shipped news taxonomy."""
    path = DEFAULT_TAXONOMY if path is None else Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"{path}: taxonomy files must end in .toml, .yaml or .yml")
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: taxonomy file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read taxonomy file: {exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: taxonomy file is not UTF-8: {exc}") from exc
    data: Any
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
        if data is None:
            data = {}
    return Taxonomy.from_mapping(data, source=str(path))
