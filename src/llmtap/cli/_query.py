"""What the query commands (events, stats, export) share: the API client, its errors as
plain messages, and the event filters."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from ..api import Api, ApiError


def api_for(url: str, api_key: str | None) -> Api:
    return Api(url, checked_key(url, api_key))


def checked_key(url: str, api_key: str | None) -> str:
    """``api_key``, once it and ``url`` can be sent at all; else a usage error saying which
    is wrong (rather than a traceback from the HTTP client)."""
    if not api_key:
        raise click.UsageError("an API key is needed: --api-key or LLMTAP_API_KEY")
    if not (api_key.isascii() and api_key.isprintable()):
        # An HTTP header carries ASCII: a key holding anything else is no key llmtap made.
        raise click.UsageError("the API key (--api-key or LLMTAP_API_KEY) is not an llmtap key")
    import httpx2

    try:
        httpx2.URL(url)
    except httpx2.InvalidURL as exc:
        raise click.UsageError(f"the server's URL (--url or LLMTAP_URL) {url!r}: {exc}") from None
    return api_key


def api_errors_reported(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command``, with the server's error answers and an unreachable server reported as a
    one-line message (exit status 1), not a traceback."""

    @functools.wraps(command)
    def reported(*args: Any, **kwargs: Any) -> Any:
        import httpx2

        try:
            return command(*args, **kwargs)
        except ApiError as exc:
            raise click.ClickException(f"the server answered {exc.status}: {exc.message}") from None
        except httpx2.HTTPError as exc:
            raise click.ClickException(f"cannot reach the server: {exc}") from None

    return reported


_FILTERS = [
    click.option("--model"),
    click.option("--template", "prompt_template_name", help="Prompt template name."),
    click.option("--revision", "template_revision", help="Template revision."),
    click.option("--status", type=click.Choice(["ok", "error", "cancelled"])),
    click.option("--environment"),
    click.option("--chat-id"),
    click.option("--chain-id"),
    click.option("--from", "from_", metavar="TIME", help="ISO 8601 time, inclusive."),
    click.option("--to", metavar="TIME", help="ISO 8601 time, exclusive."),
    click.option("--attribute", "attributes", multiple=True, metavar="KEY=VALUE"),
    click.option("-q", "--search", "q", help="Words in the prompt or output."),
]


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_FILTERS):
        command = option(command)
    return command


def event_filters(kw: dict[str, Any]) -> dict[str, Any]:
    """The filters of ``filter_options`` as ``Api`` keyword arguments."""
    out = {k: v for k, v in kw.items() if v is not None and k != "attributes"}
    attributes = {}
    for pair in kw.get("attributes") or ():
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--attribute")
        attributes[key] = value
    if attributes:
        out["attributes"] = attributes
    return out
