"""Prompt templates that remember where they came from.

``TemplateText`` is a ``str`` and ``TemplateChat`` a ``list``, both already filled in, so the
openai SDK takes them as they are; llmtap reads their ``template`` and ``params`` to record the
prompt apart from its parameters.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "CHAT_HISTORY_ROLE",
    "TemplateChat",
    "TemplateText",
    "fill",
    "fill_chat",
    "placeholders",
    "snapshot",
]

CHAT_HISTORY_ROLE = "chat_history"
# A template is filled as ``str.format`` fills it (``{{`` is a brace, ``{price:.2f}`` formats)
# when every placeholder is a given parameter's name; else only the ``{name}`` placeholders
# whose name is a given parameter are filled, and any other brace (JSON in a prompt, say) is
# left as written, where ``str.format`` would raise.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FORMATTER = string.Formatter()
_CONVERSIONS: dict[str, Callable[[Any], str]] = {"r": repr, "a": ascii, "s": str}
# A format spec of plain characters, no width or precision past 4 digits: a template stored by
# anyone holding a key is filled by the prompt tests, and ``{x:>999999999}`` is a gigabyte.
_SPEC = re.compile(r"[^{}0-9]*(?:[0-9]{1,4}(?![0-9])[^{}0-9]*)*")


def snapshot(value: Any, depth: int = 0) -> Any:
    """``value`` with its dicts, lists, tuples and sets copied, nested ones too (to a depth
    of 32), each as the same type: what the caller changes after a call (a chat loop appends
    to its history) is not what was recorded for it. Anything else is shared."""
    kind = type(value)
    if depth > 32:
        return value
    if kind is dict:
        return {k: snapshot(v, depth + 1) for k, v in value.items()}
    if kind is list or kind is tuple:
        return kind(snapshot(v, depth + 1) for v in value)
    if kind is set:
        return set(value)
    return value


def fill(template: str, params: Mapping[str, Any]) -> str:
    """``template`` filled with ``params``: as ``template.format_map(params)`` when each
    placeholder names a parameter (no attribute or index, a short format spec); else each
    ``{name}`` whose name is in ``params`` replaced by its value, the rest left as written."""
    try:
        return _format(template, params)
    except (ValueError, TypeError, KeyError):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            return str(params[name]) if name in params else match.group(0)

        return _PLACEHOLDER.sub(replace, template)


def _format(template: str, params: Mapping[str, Any]) -> str:
    out = []
    for literal, name, spec, conversion in _FORMATTER.parse(template):
        out.append(literal)
        if name is None:
            continue
        if not name.isidentifier() or name not in params or not _SPEC.fullmatch(spec or ""):
            raise KeyError(name)
        value = params[name]
        if conversion:
            value = _CONVERSIONS[conversion](value)
        out.append(format(value, spec) if spec else str(value))
    return "".join(out)


def placeholders(template: str | Iterable[Mapping[str, Any]]) -> set[str]:
    """The parameter names a text or chat template's ``{name}`` placeholders ask for (a chat
    history message's included): what a call must give for the template to fill."""
    if isinstance(template, str):
        return set(_names(template))
    names: set[str] = set()
    for message in template:
        content = message.get("content")
        parts = content if isinstance(content, list) else [content]
        for part in parts:
            text = part.get("text") if isinstance(part, Mapping) else part
            if isinstance(text, str):
                names.update(_names(text))
    return names


def _names(text: str) -> set[str]:
    try:
        return {name for _, name, _, _ in _FORMATTER.parse(text) if name and name.isidentifier()}
    except ValueError:  # not a format string: its {name}s
        return set(_PLACEHOLDER.findall(text))


def _fill_content(content: Any, params: Mapping[str, Any]) -> Any:
    if isinstance(content, str):
        return fill(content, params)
    if isinstance(content, list):  # multimodal parts: fill the text ones
        return [
            {**part, "text": fill(part["text"], params)}
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    return content


def _history_name(content: Any) -> str | None:
    if isinstance(content, str):
        match = _PLACEHOLDER.fullmatch(content.strip())
        if match:
            return match.group(1)
    return None


def fill_chat(template: Iterable[Mapping[str, Any]], params: Mapping[str, Any]) -> list[Any]:
    """The messages of a chat template with its parameters filled in.

    A message ``{"role": "chat_history", "content": "{history}"}`` is replaced by the list of
    messages in ``params["history"]``.
    """
    messages: list[Any] = []
    for message in template:
        if message.get("role") == CHAT_HISTORY_ROLE:
            name = _history_name(message.get("content"))
            if name is None or name not in params:
                raise ValueError(
                    "a chat_history message needs content '{name}' naming a parameter; "
                    f"got {message.get('content')!r}"
                )
            messages.extend(params[name] or [])
            continue
        filled = dict(message)
        if "content" in filled:
            filled["content"] = _fill_content(filled["content"], params)
        messages.append(filled)
    return messages


class TemplateText(str):
    """A completion prompt filled from ``template`` and ``params``, that remembers both.

    >>> TemplateText("Emoji for {sport}", {"sport": "soccer"})
    'Emoji for soccer'
    """

    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, params: Mapping[str, Any] | None = None) -> TemplateText:
        copied: dict[str, Any] = snapshot(dict(params or {}))
        self = super().__new__(cls, fill(template, copied))
        self.template = template
        self.params = copied
        return self


class TemplateChat(list):  # type: ignore[type-arg]
    """Chat messages filled from a template and ``params``, that remember both."""

    template: list[dict[str, Any]]
    params: dict[str, Any]

    def __init__(
        self, template: Iterable[Mapping[str, Any]], params: Mapping[str, Any] | None = None
    ) -> None:
        self.template = snapshot([dict(message) for message in template])
        self.params = snapshot(dict(params or {}))
        super().__init__(fill_chat(self.template, self.params))
