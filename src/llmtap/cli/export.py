"""``llmtap export --format jsonl|csv|parquet -o FILE``: every event the filters select,
streamed page by page from the query API into the file, so memory stays flat however many
there are. Parquet needs ``pyarrow`` (``pip install 'llmtap[parquet]'``) and is written in row
groups."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from ..api import FLAT_COLUMNS, flatten_event
from ._options import api_key_option, url_option
from ._output import private_output
from ._query import api_errors_reported, api_for, event_filters, filter_options

ROW_GROUP = 5_000  # rows a Parquet row group holds: what export keeps in memory
_FLOATS = {"latency_ms", "ttft_ms", "cost_usd"}
_INTS = {
    *("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"),
    *("cache_creation_tokens", "total_tokens"),
}


def _write_jsonl(events: Iterator[dict[str, Any]], out: IO[str]) -> None:
    for event in events:
        out.write(json.dumps(event, ensure_ascii=False))
        out.write("\n")


# A cell a spreadsheet would run as a formula (=HYPERLINK(...) in an output, say) starts so.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    # A NUL ends a cell early in most CSV readers (pandas, sqlite3's import): shown as U+FFFD.
    value = value.replace("\x00", "\ufffd")
    return "'" + value if value.startswith(_FORMULA) else value


def _write_csv(events: Iterator[dict[str, Any]], out: IO[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=FLAT_COLUMNS)
    writer.writeheader()
    for event in events:
        writer.writerow({k: _cell(v) for k, v in flatten_event(event).items()})


def parquet_schema() -> Any:
    import pyarrow as pa

    def kind(name: str) -> Any:
        return pa.float64() if name in _FLOATS else pa.int64() if name in _INTS else pa.string()

    return pa.schema([(name, kind(name)) for name in FLAT_COLUMNS])


def _write_parquet(events: Iterator[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        batch: list[dict[str, Any]] = []
        for event in events:
            batch.append(flatten_event(event))
            if len(batch) >= ROW_GROUP:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch.clear()
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))


@click.command()
@url_option
@api_key_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet"]),
    default="jsonl",
    show_default=True,
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@filter_options
@click.option("--progress/--no-progress", default=True, show_default=True)
@api_errors_reported
def export(
    url: str, api_key: str | None, fmt: str, output: Path, progress: bool, **kw: Any
) -> None:
    """Export events to a file (newest first)."""
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise click.ClickException(
                "parquet export needs pyarrow: pip install 'llmtap[parquet]'"
            ) from None
    # First: a path that cannot be written fails before any reading; and a failed export
    # leaves what the file held before.
    with private_output(output) as part:
        api = api_for(url, api_key)
        filters = event_filters(kw)
        # The stats answer from aggregates, so the total for the bar costs next to nothing.
        total = sum(g["count"] for g in api.stats(**filters))
        events = iter(api.events(page_size=1000, **filters))
        quiet = open(os.devnull, "w")  # noqa: SIM115 - closed below
        with (
            quiet,
            click.progressbar(
                length=total,
                label=f"exporting to {output}",
                file=sys.stderr if progress else quiet,
            ) as bar,
        ):

            def counted() -> Iterator[dict[str, Any]]:
                for event in events:
                    yield event
                    bar.update(1)

            if fmt == "parquet":
                _write_parquet(counted(), part)
            else:
                with part.open("w", encoding="utf-8", newline="") as out:
                    (_write_jsonl if fmt == "jsonl" else _write_csv)(counted(), out)
    click.echo(f"{bar.pos} events written to {output}", err=True)
