"""``llmtap serve``: run the server."""

from __future__ import annotations

import os
from typing import Any

import click

from ._options import db_option, setting_option


@click.command()
@db_option
@setting_option("--host", name="host")
@setting_option("--port", name="port", type=int)
@setting_option("--workers", name="workers", type=int)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(db: str, host: str, port: int, workers: int, log_level: str) -> None:
    """Run the llmtap server (ingest and query API) on a store."""
    import uvicorn

    from ..server import create_app
    from ..store import open_store

    store = open_store(db)  # created and migrated once, before any worker starts
    click.echo(f"llmtap {store.backend} store: {db}", err=True)
    click.echo(
        f"llmtap listening on http://{host}:{port}  (dashboard: http://{host}:{port}/)", err=True
    )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
    }
    if workers > 1:
        store.close()
        os.environ["LLMTAP_DB"] = db
        uvicorn.run(
            "llmtap.server.app:app_from_environment", factory=True, workers=workers, **options
        )
    else:
        uvicorn.run(create_app(store), **options)
