"""Markup to plain paragraphs, for the HTML that news formats carry inside them (ninjs
``body_html``, NewsML-G2 XHTML, feed ``content``, an email's HTML part).

Not trafilatura: these bodies are already the article (no navigation to find it in), and a
feed may hold 10,000 of them.  Block elements become paragraphs, ``<br>`` a line break,
scripts, styles and navigation are dropped.  Works on lxml and ElementTree elements alike.
"""

from __future__ import annotations

import re
from typing import Any

from worker.pipeline.textclean import clean_text

_BLOCK = frozenset(
    [
        "p",
        "div",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "blockquote",
        "pre",
        "table",
        "tr",
        "section",
        "article",
        "header",
        "figure",
        "figcaption",
        "hr",
        "address",
        "main",
        "body",
    ]
)
_SKIP = frozenset(
    "script style nav footer aside head noscript template iframe object svg math form button select".split()  # noqa: SIM905
)
_PARAGRAPH, _BREAK = "\ue000", "\ue001"
_SPACES = re.compile(r"\s+")


def local_name(tag: Any) -> str:
    """``{http://www.w3.org/1999/xhtml}p`` -> ``p``; comments and PIs (non-str tags) -> ``""``."""
    return tag.rsplit("}", 1)[-1].split(":")[-1].lower() if isinstance(tag, str) else ""


def element_text(root: Any) -> str:
    """The text of an element tree in paragraphs: walked with a stack, not recursion, so a
    deeply nested tree cannot exhaust the interpreter's stack."""
    parts: list[str] = []
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        element, closing = stack.pop()
        name = local_name(element.tag)
        if closing:
            if name in _BLOCK:
                parts.append(_PARAGRAPH)
            if element is not root:
                parts.append(element.tail or "")
            continue
        if not name or name in _SKIP:
            if element is not root:
                parts.append(element.tail or "")
            continue
        if name == "br":
            parts.append(_BREAK)
            parts.append(element.tail or "")
            continue
        if name in _BLOCK:
            parts.append(_PARAGRAPH)
        parts.append(element.text or "")
        stack.append((element, True))
        stack.extend((child, False) for child in reversed(list(element)))
    paragraphs = []
    for block in "".join(parts).split(_PARAGRAPH):
        lines = [_SPACES.sub(" ", line).strip() for line in block.split(_BREAK)]
        paragraph = "\n".join(line for line in lines if line)
        if paragraph:
            paragraphs.append(paragraph)
    return clean_text("\n\n".join(paragraphs))


def html_text(html: str) -> str:
    """The text of an HTML fragment or page, read with lxml's HTML parser (no network, no
    entity expansion beyond HTML's own).  Empty when there is no text."""
    if "<" not in html:
        return clean_text(html)
    import lxml.etree
    import lxml.html

    parser = lxml.html.HTMLParser(no_network=True, remove_comments=True, remove_pis=True, huge_tree=False)
    try:
        root = lxml.html.fromstring(html, parser=parser)
    except (lxml.etree.ParserError, ValueError):
        return ""
    return element_text(root)
