"""``llmtap replay EVENT``: rerun one recorded call with another model or template revision,
with the caller's own provider settings (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``); the new
call is recorded as an event whose parent is the original, and both answers are printed side
by side."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import click

from ..evals.cases import REPLAYED, case_from_event, replay_refused
from ..evals.runner import Pricing, RunOptions, call_model, prepare
from ._options import api_key_option, url_option
from ._output import table
from ._query import api_errors_reported
from .testsets import _api, revision_template, template_file

__all__ = ["replay"]


@click.command()
@url_option
@api_key_option
@click.argument("event_id")
@click.option("--model", help="The model to call (default: the event's).")
@click.option(
    "--template",
    "template_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Another template: a JSON list of chat messages, or plain text.",
)
@click.option("--revision", help="Another revision of a template (its id, or a prefix).")
@click.option("--timeout", type=click.FloatRange(0.1), default=60.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the new call as JSON.")
@api_errors_reported
def replay(
    url: str,
    api_key: str | None,
    event_id: str,
    model: str | None,
    template_path: Path | None,
    revision: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Rerun the call EVENT_ID and show both answers side by side."""
    import llmtap

    with _api(url, api_key) as api:
        event = api.event(event_id)
        template = template_file(template_path) if template_path else None
        if revision:
            template = revision_template(api, revision)
    if event.get("api") not in REPLAYED:
        raise click.ClickException(replay_refused(event))
    case = {**case_from_event(event), "id": 0}
    call = prepare(case, RunOptions(model=model, template=template), Pricing([]))
    if call.error:
        raise click.ClickException(call.error)
    new_id = str(uuid.uuid4())
    tap = {
        "event_id": new_id,
        "parent_event_id": event["id"],
        "chain_id": event.get("chain_id"),
        "prompt_template_name": event.get("prompt_template_name"),
        "attributes": {"llmtap_replay_of": event["id"]},
    }

    async def once() -> tuple[str, float, Any]:
        client = llmtap.AsyncClient(timeout=timeout, llmtap={"api_key": api_key, "url": url})
        try:
            return await call_model(client, call, tap)
        finally:
            await client.aclose()

    output, latency, _ = asyncio.run(once())
    if as_json:
        answer = {"event_id": new_id, "model": call.model, "latency_ms": latency, "output": output}
        click.echo(json.dumps(answer, ensure_ascii=False))
        return
    rows = [
        ["model", str(event.get("model") or ""), str(call.model)],
        ["latency ms", f"{event.get('latency_ms') or 0:.0f}", f"{latency:.0f}"],
        ["output", " ".join(str(event.get("output_text") or "").split()), " ".join(output.split())],
    ]
    click.echo(table(rows, ["", "original", "replay"]))
