"""``llmtap serve``: run the server."""

from __future__ import annotations

import click

from ._options import db_option, setting_option


@click.command()
@db_option
@setting_option("--host", name="host")
@setting_option("--port", name="port", type=int)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(db: str, host: str, port: int, log_level: str) -> None:
    """Run the llmtap server (ingest and query API) on a store."""
    import uvicorn

    from ..server import create_app
    from ..store import open_store

    store = open_store(db)
    app = create_app(store)
    click.echo(f"llmtap {store.backend} store: {db}", err=True)
    click.echo(
        f"llmtap listening on http://{host}:{port}  (dashboard: http://{host}:{port}/)", err=True
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
