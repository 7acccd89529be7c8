"""Markdown kept as written, minus YAML (---) or TOML (+++) front matter."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import yaml

from worker.pipeline.formats.base import LIKELY, MARKDOWN, NO, Declined, Format, Head, Parsed, Source, apply_fields
from worker.pipeline.textclean import clean_text, one_line

_EXTENSIONS = (".md", ".markdown")
_MAX_FRONT_MATTER = 64 * 1024
_FRONT_MATTER_END = {
    "---": re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE),
    "+++": re.compile(r"^\+\+\+[ \t]*$", re.MULTILINE),
}
_ATX_HEADING = re.compile(r"#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*(?:\n|\Z)")


def sniff(head: Head) -> float:
    """Front matter at the very start: Markdown, if the extension says nothing else."""
    start = head.text[:1024].lstrip(" \t\r\n\ufeff")
    return LIKELY if start.startswith(("---\n", "---\r\n", "+++\n", "+++\r\n")) else NO


def parse_markdown(text: str, *, sniffed: bool = False) -> Parsed:
    """Markdown kept as written, minus YAML (---) or TOML (+++) front matter.

    ``sniffed``: the file was not named .md, only started like front matter; without a
    closing delimiter it is not Markdown after all (``Declined``: plain text).
    """
    text = clean_text(text)
    parsed = Parsed(MARKDOWN, text)
    front = _split_front_matter(text)
    if front is None and sniffed:
        raise Declined
    if front is not None:
        kind, block, parsed.body = front
        fields = _load_front_matter(kind, block, parsed.warnings)
        apply_fields(parsed, fields)
    if parsed.title is None and (heading := _ATX_HEADING.match(parsed.body.lstrip("\n"))):
        parsed.title = one_line(heading[1]) or None
    return parsed


def _parse(source: Source) -> Parsed:
    sniffed = PurePath(source.filename).suffix.lower() not in _EXTENSIONS
    return parse_markdown(source.text, sniffed=sniffed)


def _split_front_matter(text: str) -> tuple[str, str, str] | None:
    delimiter = text[:3]
    if delimiter not in _FRONT_MATTER_END or text[3:4] != "\n":
        return None
    end = _FRONT_MATTER_END[delimiter].search(text, 4, _MAX_FRONT_MATTER)
    if end is None:
        return None
    return delimiter, text[4 : end.start()], text[end.end() :]


class _FrontMatterLoader(yaml.SafeLoader):
    """SafeLoader that leaves dates as the strings they were written as."""


_FrontMatterLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_front_matter(kind: str, block: str, warnings: list[str]) -> Mapping[str, Any]:
    """Front matter that does not parse is a warning; the body is still a document."""
    language = "YAML" if kind == "---" else "TOML"
    try:
        loaded: Any = (
            yaml.load(block, Loader=_FrontMatterLoader)  # noqa: S506 - a SafeLoader subclass
            if kind == "---"
            else tomllib.loads(block)
        )
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        warnings.append(f"front matter: ignored, the {language} does not parse: {first_line}")
        return {}
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        warnings.append(f"front matter: ignored, the {language} is not a mapping of fields")
        return {}
    return loaded


FORMAT = Format(
    name=MARKDOWN,
    label="Markdown (`markdown`)",
    sniff=sniff,
    parse=_parse,
    extensions=_EXTENSIONS,
    recognised="`.md`, `.markdown`; other names starting with closed `---`/`+++` front matter",
    fields="YAML/TOML front matter → title, date, author, language, tags, other keys → metadata;"
    " first `# heading` → title when the front matter has none",
    failures=("empty",),
)
