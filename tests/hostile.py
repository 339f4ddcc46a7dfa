"""Hostile text for the escaping tests, and the check of a page against it.

Each user-controlled field gets three payloads, one of each kind, tagged with the field's name
(``xss-model-img``): a tag that runs a script, a ``</script>`` that would close a script or data
block, and a quote that would break out of an attribute. A page passes when no payload became
markup (read from the raw HTML, then from the page as a browser parses it: Lexbor, an HTML5
parser) and tells which payloads it showed as text, whole."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from selectolax.lexbor import LexborHTMLParser

__all__ = ["KINDS", "Findings", "inspect_page", "payload", "payloads"]

KINDS = {
    "img": "<img src=x id=xss-{tag} onerror=alert(1)>",
    "script": "</script><script id=xss-{tag}>alert(1)</script>",
    "attr": "\"'><svg id=xss-{tag} onload=alert(1)>",
}
_TAG = re.compile(r"xss-([a-z_]+)-(img|script|attr)\b")
# What an unescaped payload leaves in the raw HTML: its element, as markup.
_RAW_MARKUP = re.compile(r"<(?:img src=x |script |svg )id=xss-([a-z_]+)-(img|script|attr)")
# Attribute names our templates use; a payload that became markup, or a quote that broke out
# of a value, makes others (`onload`, `'`). No page has inline event handlers (the CSP forbids
# them anyway).
_ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9-]*")
_URL_ATTRIBUTES = ("href", "src", "action", "formaction")


def payload(field_name: str, kind: str) -> str:
    return KINDS[kind].format(tag=f"{field_name}-{kind}")


def payloads(field_name: str) -> str:
    """The three kinds in one string: for a query parameter, one request tries them all."""
    return "".join(payload(field_name, kind) for kind in KINDS)


@dataclass
class Findings:
    leaks: list[str] = field(default_factory=list)
    # (field, kind) of each payload the page showed whole, as text or an attribute's value.
    shown: set[tuple[str, str]] = field(default_factory=set)

    def read(self, text: str) -> None:
        for match in _TAG.finditer(text):
            whole = payload(*match.groups())
            # Shown as written, or as JSON shows a string (a parameter in a pretty-printed
            # object, the raw event): quotes backslashed.
            if whole in text or json.dumps(whole)[1:-1] in text:
                self.shown.add((match.group(1), match.group(2)))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def inspect_page(html: str) -> Findings:
    """What ``html`` leaked (payload markup, broken attributes or data blocks, script URLs)
    and which payloads it showed."""
    found = Findings()
    for match in _RAW_MARKUP.finditer(html):
        found.leaks.append(f"raw markup of {match.group(1)} ({match.group(2)}): {match.group(0)!r}")
    tree = LexborHTMLParser(html)
    assert tree.root is not None
    for node in tree.root.traverse(include_text=False):
        where = f"<{node.tag}>"
        for name, value in node.attributes.items():
            value = value or ""
            if name.startswith("on") or not _ATTRIBUTE_NAME.fullmatch(name):
                found.leaks.append(f"attribute {name!r}={value!r} on {where}: not ours")
            if name == "id" and _TAG.match(value):
                found.leaks.append(f"{where} made by the payload {value}")
            if name in _URL_ATTRIBUTES and value.strip().lower().startswith("javascript:"):
                found.leaks.append(f"{name}={value!r} on {where}: a script URL")
            found.read(value)
        text = node.text(deep=False)
        if node.tag != "script":
            found.read(text)
        elif node.attributes.get("type") == "application/json":
            # A data block: a `</script>` in it that was not JSON-escaped ends it early, and
            # what is left of it no longer parses.
            try:
                data = json.loads(text)
            except ValueError:
                found.leaks.append(f"a JSON data block no longer parses: {text[:120]!r}")
            else:
                for string in _strings(data):
                    found.read(string)
        elif _TAG.search(text):
            found.leaks.append(f"a payload inside a script: {text[:120]!r}")
    return found
