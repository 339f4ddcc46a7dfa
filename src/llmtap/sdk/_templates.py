"""Prompt templates that remember where they came from.

``TemplateText`` is a ``str`` and ``TemplateChat`` a ``list``, both already filled in, so the
openai SDK takes them as they are; llmtap reads their ``template`` and ``params`` to record the
prompt apart from its parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "CHAT_HISTORY_ROLE",
    "TemplateChat",
    "TemplateText",
    "fill",
    "fill_chat",
    "placeholders",
]

CHAT_HISTORY_ROLE = "chat_history"
# Only {name} placeholders whose name is a given parameter are filled; any other brace (JSON in a
# prompt, say) is left as written, unlike str.format which would raise.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill(template: str, params: Mapping[str, Any]) -> str:
    """``template`` with each ``{name}`` whose name is in ``params`` replaced by its value."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(params[name]) if name in params else match.group(0)

    return _PLACEHOLDER.sub(replace, template)


def placeholders(template: str | Iterable[Mapping[str, Any]]) -> set[str]:
    """The parameter names a text or chat template's ``{name}`` placeholders ask for (a chat
    history message's included): what a call must give for the template to fill."""
    if isinstance(template, str):
        return set(_PLACEHOLDER.findall(template))
    names: set[str] = set()
    for message in template:
        content = message.get("content")
        parts = content if isinstance(content, list) else [content]
        for part in parts:
            text = part.get("text") if isinstance(part, Mapping) else part
            if isinstance(text, str):
                names.update(_PLACEHOLDER.findall(text))
    return names


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
        params = dict(params or {})
        self = super().__new__(cls, fill(template, params))
        self.template = template
        self.params = params
        return self


class TemplateChat(list):  # type: ignore[type-arg]
    """Chat messages filled from a template and ``params``, that remember both."""

    template: list[dict[str, Any]]
    params: dict[str, Any]

    def __init__(
        self, template: Iterable[Mapping[str, Any]], params: Mapping[str, Any] | None = None
    ) -> None:
        self.template = [dict(message) for message in template]
        self.params = dict(params or {})
        super().__init__(fill_chat(self.template, self.params))
