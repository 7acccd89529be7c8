"""HTML pages: the main article text and its metadata, via trafilatura.

trafilatura drops scripts, styles, navigation and comments and works on the string it is
given (it never fetches anything for ``bare_extraction``).  ``<nav>``, ``<footer>`` and
``<aside>`` are pruned first: on short pages its fallback extractor would keep them.  Date
extraction is limited to markup (no "extensive search" through the text) so the same page
always gets the same date.
"""

from __future__ import annotations

import functools
import re
from configparser import ConfigParser
from typing import Any

from worker.errors import NoExtractableText
from worker.pipeline.formats.base import HTML, LIKELY, NO, Format, Head, Parsed
from worker.pipeline.textclean import clean_text, one_line

_HTML_START = re.compile(r"<!doctype\s+html|<html[\s>]", re.IGNORECASE)
_HAS_ROOT = re.compile(r"<html[\s>]|<body[\s>]", re.IGNORECASE)
_DATE_PARAMS = {"extensive_search": False, "original_date": True}
# HTML5 says what is never the main content; trafilatura's fallback on short pages keeps it.
_NEVER_CONTENT = ["//nav", "//footer", "//aside"]


def parse_html(html: str) -> Parsed:
    """Main text, title, author, date, tags and url of one page."""
    html = clean_text(html)
    result = _extract(html)
    if result is None and not _HAS_ROOT.search(html[:4096]):
        result = _extract(f"<html><body>{html}</body></html>")  # a bare fragment
    if result is None or not isinstance(text := result.get("text"), str) or not text.strip():
        raise NoExtractableText("the HTML has no extractable article text (only markup, scripts, styles or navigation)")
    parsed = Parsed(HTML, text)
    parsed.title = _field(result, "title")
    parsed.author = _field(result, "author")
    parsed.date_raw = _field(result, "date")
    parsed.tags = _tags(result)
    for key, name in (("url", "url"), ("sitename", "site"), ("description", "description")):
        if value := _field(result, key):
            parsed.metadata[name] = value
    return parsed


@functools.cache
def _config() -> ConfigParser:
    """trafilatura's defaults, minus its own 20 MB cap: the caller enforces the size limit."""
    from trafilatura.settings import use_config

    config = use_config()
    config.set("DEFAULT", "MAX_FILE_SIZE", str(1 << 40))
    return config


def _extract(html: str) -> dict[str, Any] | None:
    import trafilatura

    try:
        document = trafilatura.bare_extraction(
            html,
            include_comments=False,
            with_metadata=True,
            date_extraction_params=_DATE_PARAMS,
            prune_xpath=_NEVER_CONTENT,
            config=_config(),
        )
    except Exception as exc:  # lxml and friends raise many types on hostile markup
        raise NoExtractableText(f"the HTML could not be parsed: {exc}") from None
    if document is None:
        return None
    return dict(document.as_dict()) if hasattr(document, "as_dict") else dict(document)


def _field(result: dict[str, Any], key: str) -> str | None:
    value = result.get(key)
    return one_line(value) or None if isinstance(value, str) else None


def _tags(result: dict[str, Any]) -> list[str]:
    tags: list[str] = []
    for key in ("tags", "categories"):
        value = result.get(key) or []
        for item in [value] if isinstance(value, str) else value:
            tags.extend(t for t in (one_line(part) for part in str(item).split(",")) if t)
    return list(dict.fromkeys(t for t in tags if len(t) <= 100))[:100]


def sniff(head: Head) -> float:
    """``<!DOCTYPE html`` or ``<html`` at the start: HTML, if the extension says nothing else."""
    return LIKELY if _HTML_START.match(head.text[:1024].lstrip(" \t\r\n\ufeff")) else NO


FORMAT = Format(
    name=HTML,
    label="HTML (`html`)",
    sniff=sniff,
    parse=lambda source: parse_html(source.text),
    extensions=(".html", ".htm", ".xhtml"),
    recognised="`.html`, `.htm`, `.xhtml`; other names starting with `<!DOCTYPE html` or `<html`",
    fields="main text via trafilatura; `<title>`/meta → title, author, date (markup only), tags;"
    " url, site, description → metadata; a leading wire dateline → dateline",
    failures=("no_text_extracted",),
)
