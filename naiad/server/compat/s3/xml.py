"""S3's XML: answers written from nested (name, value) pairs, request bodies read with their
namespace ignored (boto3 sends S3's, other clients none)."""

import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from datetime import UTC, datetime
from xml.sax.saxutils import escape

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
MAX_BODY = 4 * 1024 * 1024  # 1,000 keys to delete or 10,000 parts to complete fit

Value = str | int | bool | datetime | None
# A node is an element: its name, and text or its children in order.
Node = tuple[str, "Value | list[Node]"]


def timestamp(moment: datetime) -> str:
    """ISO 8601 with milliseconds, as S3 writes times in XML."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return timestamp(value)
    return "" if value is None else escape(str(value))


def _render(node: Node, out: list[str], attributes: str = "") -> None:
    name, value = node
    if isinstance(value, list):
        out.append(f"<{name}{attributes}>")
        for child in value:
            _render(child, out)
        out.append(f"</{name}>")
    else:
        out.append(f"<{name}{attributes}>{_text(value)}</{name}>")


def element(node: Node) -> bytes:
    """One element, without the XML declaration."""
    out: list[str] = []
    _render(node, out)
    return "".join(out).encode()


def document(root: str, content: "Value | list[Node]", namespace: bool = True) -> bytes:
    """A whole answer: the declaration and ``root`` (in S3's namespace) holding ``content``,
    its children or its text."""
    out: list[str] = []
    _render((root, content), out, f' xmlns="{NAMESPACE}"' if namespace else "")
    return DECLARATION + "".join(out).encode()


class MalformedXML(ValueError):
    """The body is not the XML document the operation takes."""


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse(body: bytes, root: str) -> ElementTree.Element:
    """The root element of a request body, checked to be ``root``."""
    try:
        element_ = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise MalformedXML(f"The body is not well-formed XML ({exc}).") from None
    if _local(element_.tag) != root:
        raise MalformedXML(f"The body's root element is <{_local(element_.tag)}>, not <{root}>.")
    return element_


def children(parent: ElementTree.Element, name: str) -> Iterator[ElementTree.Element]:
    """The direct children named ``name``, whatever their namespace."""
    return (child for child in parent if _local(child.tag) == name)


def text(parent: ElementTree.Element, name: str) -> str | None:
    """The text of the first child named ``name``; None when there is none."""
    for child in children(parent, name):
        return child.text or ""
    return None
