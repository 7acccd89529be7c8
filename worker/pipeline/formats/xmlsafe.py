"""XML parsed safely: no entity declarations (billion laughs), no external entities or DTDs
(XXE), no network -- defusedxml over the standard library's expat, which builds the tree
without recursion.  Every failure is typed: ``unsafe_xml`` for what is refused on purpose,
``invalid_xml`` for what is not well-formed."""

from __future__ import annotations

from typing import Any

from worker.errors import InvalidXML, UnsafeXML


def parse_xml(raw: bytes, what: str) -> Any:
    """The root element of ``raw``; ``what`` names the document in messages."""
    import xml.etree.ElementTree as ET

    import defusedxml
    import defusedxml.ElementTree

    try:
        return defusedxml.ElementTree.fromstring(raw, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise UnsafeXML(
            f"the {what} declares entities or external references ({type(exc).__name__}); they are never"
            " expanded or fetched",
            refused=type(exc).__name__,
        ) from None
    except ET.ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise InvalidXML(f"the {what} is not well-formed XML: {exc}", line=line, column=column) from None
    except (LookupError, ValueError) as exc:  # an encoding Python does not know, or cannot use
        raise InvalidXML(f"the {what} cannot be read: {exc}") from None


def child(element: Any, name: str) -> Any | None:
    """The first child with local name ``name``, whatever its namespace."""
    for item in element:
        if isinstance(item.tag, str) and item.tag.rsplit("}", 1)[-1] == name:
            return item
    return None


def children(element: Any, name: str) -> list[Any]:
    return [item for item in element if isinstance(item.tag, str) and item.tag.rsplit("}", 1)[-1] == name]


def text_of(element: Any | None) -> str | None:
    """All the text inside an element, on one line; None when there is none."""
    if element is None:
        return None
    text = " ".join("".join(element.itertext()).split())
    return text or None


def attribute(element: Any | None, name: str) -> str | None:
    """An attribute by local name (``xml:lang`` is ``lang``), stripped; None when absent or empty."""
    if element is None:
        return None
    for key, value in element.attrib.items():
        if key.rsplit("}", 1)[-1] == name:
            return str(value).strip() or None
    return None
