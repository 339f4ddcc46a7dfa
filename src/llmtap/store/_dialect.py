"""What SQL differs between backends, behind one small interface: the text index (``q=``) and
the summary columns of the events list. Everything else the store modules write is portable
SQL (``?`` placeholders, ``ON CONFLICT``, ``COALESCE``), run on SQLite's connection or on the
PostgreSQL adaptor (``_pg``) alike. A connection tells its dialect with a ``dialect``
attribute; SQLite's own connection has none, so SQLite is the default."""

from __future__ import annotations

from typing import Any

from . import _hist
from ._bulk import insert_many
from ._common import search_words

__all__ = ["SUMMARY_CHARS", "Dialect", "dialect_of"]

# An event in a summary keeps this much of its output and error message.
SUMMARY_CHARS = 500


class Dialect:
    """SQLite's: an FTS5 table ``events_text`` whose rowid is the event's seq, contentless."""

    name = "sqlite"
    # An event as a list shows it: without what can be large, cut by the database, so only
    # this reaches Python (body, output, error type, message, status code).
    summary = (
        "json_remove(e.body, '$.request', '$.response', '$.template_chat', '$.template_text',"
        " '$.template_params', '$.attributes', '$.output_text', '$.error'),"
        f" substr(json_extract(e.body, '$.output_text'), 1, {SUMMARY_CHARS}),"
        " json_extract(e.body, '$.error.type'),"
        f" substr(json_extract(e.body, '$.error.message'), 1, {SUMMARY_CHARS}),"
        " json_extract(e.body, '$.error.status_code')"
    )
    # The usage counts the events table has no column for (see ``_facts``), of events ``e``:
    # read by the database, so stats from the events need not parse whole bodies in Python.
    extra_usage = (
        "json_extract(e.body, '$.usage.cached_tokens'),"
        " json_extract(e.body, '$.usage.reasoning_tokens')"
    )

    # What each sort of the events list orders by, NULL latency or cost lowest: written as the
    # expression indexes are (``events_by_latency``, ``events_by_cost``), which SQLite uses
    # for an expression spelled the same way only (``COALESCE`` would sort the whole table).
    sort_keys = {
        "started_at": "e.started_us",
        "latency_ms": "ifnull(e.latency_ms, -1)",
        "cost_usd": "ifnull(e.cost_usd, -1)",
    }

    def hist_sum(self, column: str) -> str:
        """The SQL that merges a group's stored histograms (``column``); ``hist_of`` reads
        its value back as a histogram. SQLite merges them in its aggregate, in C's big
        integers (``_hist.HistSum``)."""
        return f"llmtap_hist_sum({column})"

    def hist_of(self, value: Any) -> int:
        return _hist.decode(value)

    def stored_histograms(
        self, conn: Any, keys: list[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], tuple[bytes | None, bytes | None]] | None:
        """The stored latency and TTFT histograms of the aggregate rows of ``keys``
        (project_id, level, attr_id, bucket, dims_id) that have one, for derivation to merge
        them in Python (see ``_derive._add_aggregates``); None: the upsert merges them
        itself (SQLite's ``llmtap_hist_add`` is Python's, in C's big integers)."""
        return None

    def text_match(self, alias: str, project_id: int, text: str) -> tuple[str, list[Any]] | None:
        """The condition selecting the events (``alias``) that contain every word of
        ``text``; None when it has no word (it selects nothing out)."""
        words = search_words(text)
        if not words:
            return None
        # Each word quoted: no character of it is FTS syntax.
        query = " ".join(f'"{w}"' for w in words)
        return f"{alias}.seq IN (SELECT rowid FROM events_text WHERE events_text MATCH ?)", [query]

    def attr_match(self, alias: str) -> str:
        """The condition selecting the events (``alias``) with an attribute (parameters:
        project, key, value)."""
        return (
            f"{alias}.seq IN (SELECT seq FROM event_attrs WHERE project_id = ? AND key = ?"
            " AND value = ?)"
        )

    def attr_params(self, project_id: int, key: str, value: str) -> list[Any]:
        return [project_id, key, value]

    def index_texts(self, conn: Any, rows: list[tuple[int, int, str]]) -> None:
        """Add events' searchable texts (project_id, seq, text) to the index."""
        insert_many(conn, "INSERT INTO events_text (rowid, text)", [(s, t) for _, s, t in rows])

    def unindex_texts(self, conn: Any, rows: list[tuple[int, int, str]]) -> None:
        """Take events' texts out of the index: the very text indexed (contentless FTS5)."""
        for _, seq, text in rows:
            conn.execute(
                "INSERT INTO events_text (events_text, rowid, text) VALUES ('delete', ?, ?)",
                (seq, text),
            )

    def remember_ids(self, conn: Any, rows: list[tuple[int, str]]) -> None:
        """Record events' ids (project_id, id) copied in by ``migrate-store``: SQLite's
        events table holds them unique itself."""

    def forget_ids(self, conn: Any, project_id: int, seqs: list[int]) -> None:
        """Release the ids of events about to be deleted, so they can be stored again."""


SQLITE = Dialect()


def dialect_of(conn: Any) -> Dialect:
    return getattr(conn, "dialect", SQLITE)  # type: ignore[no-any-return]
