"""The calls tests/test_otlp.py makes twice: through an OpenTelemetry-instrumented openai
client (tests/otlp_app.py), and through llmtap.Client. Each call's last user message names
it (``case:NAME``), so the two events of a call can be paired."""

from __future__ import annotations

import contextlib
from typing import Any

import openai

CASES = ("chat", "stream", "tools", "error", "embeddings")
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
]


def run_calls(client: Any) -> None:
    def chat(case: str, **kwargs: Any) -> Any:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "You answer briefly."},
                {"role": "user", "content": f"case:{case} {kwargs.pop('directive', '')}"},
            ],
            **kwargs,
        )

    chat("chat", temperature=0.5)
    for _ in chat("stream", stream=True, stream_options={"include_usage": True}):
        pass
    chat("tools", directive="[[tool:get_weather]]", tools=TOOLS)
    with contextlib.suppress(openai.RateLimitError):
        chat("error", directive="[[status:429]]")
    client.embeddings.create(model="text-embedding-3-small", input="case:embeddings")


ANTHROPIC_CASES = ("chat", "stream", "tools", "error", "cache")
ANTHROPIC_MODEL = "claude-3-5-haiku-20241022"


def run_anthropic_calls(client: Any) -> None:
    """The same calls through the ``anthropic`` SDK (its Messages API)."""
    import anthropic

    def message(case: str, directive: str = "", **kwargs: Any) -> Any:
        return client.messages.create(
            model=ANTHROPIC_MODEL,
            max_tokens=100,
            system="You answer briefly.",
            messages=[{"role": "user", "content": f"case:{case} {directive}".strip()}],
            **kwargs,
        )

    message("chat", stop_sequences=["END"])
    with client.messages.stream(
        model=ANTHROPIC_MODEL,
        max_tokens=100,
        system="You answer briefly.",
        messages=[{"role": "user", "content": "case:stream"}],
    ) as stream:
        for _ in stream.text_stream:
            pass
    tool = {"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}
    message("tools", "[[tool:get_weather]]", tools=[tool])
    with contextlib.suppress(anthropic.RateLimitError):
        message("error", "[[status:429]]")
    message("cache", "[[cached:2]] [[cache_write:3]]")  # of the prompt's tokens
