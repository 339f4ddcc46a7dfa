"""``llmtap serve``: run the server."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import click

from ._options import db_option, setting_option


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@db_option
@setting_option("--read-db", name="read_db", metavar="URL")
@setting_option("--host", name="host")
@setting_option("--port", name="port", type=int)
@setting_option("--workers", name="workers", type=int)
@setting_option("--admin-token", name="admin_token")
@setting_option("--retention-days", name="retention_days", type=click.IntRange(min=0))
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(
    db: str,
    read_db: str | None,
    host: str,
    port: int,
    workers: int,
    admin_token: str | None,
    retention_days: int,
    log_level: str,
) -> None:
    """Run the llmtap server: ingest and query API, and the dashboard."""
    from ..server.dashboard.auth import MIN_TOKEN
    from ..settings import SETTINGS, resolve

    # Every server setting read now: a bad LLMTAP_* is a usage error naming it, not a
    # traceback once the server has said it listens.
    for setting in SETTINGS.values():
        if setting.scope == "server":
            try:
                resolve(setting.name)
            except ValueError as e:
                raise click.UsageError(str(e)) from None

    if admin_token and len(admin_token) < MIN_TOKEN:
        raise click.UsageError(
            f"the admin token (LLMTAP_ADMIN_TOKEN or --admin-token) is {len(admin_token)} "
            f"characters long: use at least {MIN_TOKEN}, for instance the output of: "
            "python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )
    import uvicorn

    from ..server import create_app
    from ..server._gc import tune_gc
    from ..server._protocol import uvicorn_limits
    from ..server.dashboard import ensure_admin_token
    from ..store import describe_db, open_store

    try:  # created and migrated once, before any worker starts
        store = open_store(db, read_db)
    except ValueError as e:  # --read-db with SQLite, or not a URL
        raise click.UsageError(str(e)) from None
    # Beyond loopback, the dashboard must be closed from the first second: by its users'
    # passwords, or (none yet) a token chosen in advance, not one printed in a log.
    if not _loopback(host) and not admin_token and not store.count_users():
        store.close()
        raise click.UsageError(
            f"refusing to listen on {host} without a dashboard credential: set "
            "LLMTAP_ADMIN_TOKEN (or --admin-token) to make the first user with, or keep the "
            "default 127.0.0.1"
        )
    new_token = ensure_admin_token(store, admin_token)
    reads = f" (queries read from {describe_db(read_db)})" if read_db else ""
    click.echo(f"llmtap {store.backend} store: {describe_db(db)}{reads}", err=True)
    if new_token:
        click.echo(
            f"dashboard admin token (shown once, only its hash is kept): {new_token}", err=True
        )
    click.echo(
        f"llmtap listening on http://{host}:{port}  (dashboard: http://{host}:{port}/)", err=True
    )
    # Where this server listens, for the links its notifications carry (``public_url``
    # unset), in this process and in each worker.
    os.environ["LLMTAP_HOST"], os.environ["LLMTAP_PORT"] = host, str(port)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        **uvicorn_limits(),
    }
    if workers > 1:
        store.close()
        os.environ["LLMTAP_DB"] = db  # each worker opens the store itself
        if read_db:
            os.environ["LLMTAP_READ_DB"] = read_db
        if admin_token:
            os.environ["LLMTAP_ADMIN_TOKEN"] = admin_token
        os.environ["LLMTAP_RETENTION_DAYS"] = str(retention_days)
        uvicorn.run(
            "llmtap.server.app:app_from_environment",
            factory=True,
            workers=workers,
            # uvicorn kills a worker whose health-check thread has not answered in 5 s, and
            # with it every request in flight; on a loaded 2-core machine a busy worker can be
            # that late (seen as four clients cut off at once). Slow is not dead.
            timeout_worker_healthcheck=30,
            **options,
        )
    else:
        app = create_app(store, admin_token=admin_token, retention_days=retention_days)
        tune_gc()
        uvicorn.run(app, **options)
