"""``llmtap migrate-store``: copy a whole store to another (SQLite file or PostgreSQL URL,
either way), resumable, verified."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["migrate_store"]


@click.command("migrate-store")
@click.option("--from", "source", required=True, metavar="PATH_OR_URL", help="Store to copy.")
@click.option("--to", "target", required=True, metavar="PATH_OR_URL", help="Store to fill.")
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--progress/--no-progress", default=True, show_default=True)
def migrate_store(source: str, target: str, batch_size: int, progress: bool) -> None:
    """Copy every table of a store (events, feedback, keys, prices, templates, aggregates,
    boards, alerts, users, ...) into another, in batches. Run it again after an
    interruption: it resumes where the target got to. Counts are verified per table at the
    end; a mismatch exits 1. Stop the servers writing to the source first."""
    from ..store import describe_db, is_url, open_store

    if source == target:
        raise click.UsageError("--from and --to name the same store")
    if not is_url(source) and not Path(source).is_file():
        # Opening it would make an empty store there, and copy nothing.
        raise click.UsageError(f"--from: no SQLite file {source}")
    src = open_store(source)
    try:
        dst = open_store(target)
    except BaseException:
        src.close()
        raise
    try:
        click.echo(f"copying {describe_db(source)} to {describe_db(target)}", err=True)
        src.catch_up()  # every stored event counted in the aggregates that are copied
        mismatches = _copy(src, dst, batch_size, progress)
    finally:
        dst.close()
        src.close()
    if mismatches:
        for name, have, want in mismatches:
            click.echo(f"{name}: {have} rows in the target, {want} in the source", err=True)
        raise SystemExit(1)
    click.echo("every table copied; counts match", err=True)


def _copy(src: Store, dst: Store, batch_size: int, progress: bool) -> list[tuple[str, int, int]]:
    tables = src.tables()
    theirs = {t["name"]: t for t in dst.tables()}
    for table in tables:
        other = theirs.get(table["name"])
        if other is None or set(other["columns"]) != set(table["columns"]):
            raise click.ClickException(
                f"table {table['name']} differs between the stores: upgrade both to the same"
                " llmtap version"
            )
    # Rows in a target no copy wrote would be kept, and a key taken there would skip the
    # source's row of that key (a user of the same name would keep the source's roles): only
    # an empty store, or one this copy was filling, is a target.
    if not any(dst.copy_progress(t["name"]) for t in tables):
        held = [t["name"] for t in tables if dst.count_rows(t["name"])]
        if held:
            raise click.ClickException(
                f"the target holds data already ({', '.join(held)}): copy into an empty store"
            )
    for table in tables:
        name = table["name"]
        state = dst.copy_progress(name) or {"after": None, "done": False}
        if state["done"]:
            continue
        total = src.count_rows(name)
        after = state["after"]
        with click.progressbar(
            length=total, label=f"{name:>16}", file=sys.stderr if progress else _QUIET
        ) as bar:
            if after is not None:  # resumed: what was copied already
                bar.update(dst.count_rows(name))
            while True:
                rows = src.read_rows(table, after, batch_size)
                done = len(rows) < batch_size
                dst.write_rows(table, rows, done)
                bar.update(len(rows))
                if done:
                    break
                key = table["key"]
                after = [rows[-1][table["columns"].index(c)] for c in key]
    dst.finish_copy()
    return [
        (t["name"], have, want)
        for t in tables
        if (have := dst.count_rows(t["name"])) != (want := src.count_rows(t["name"]))
    ]


class _Quiet:
    """Where a bar goes with ``--no-progress``."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


_QUIET: Any = _Quiet()
