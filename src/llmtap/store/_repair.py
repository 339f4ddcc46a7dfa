"""Migration step: repair what versions before the wire bounds stored and can no longer read.

Before ``wire`` bounded numbers and instants, an event could be stored with a latency of
``1e999``, a ``started_at`` in year 10000 or 2^63-1 input tokens; a price override of ``1e999``
per million tokens; a rating of ``Infinity``. Each made some read answer 500 for good (a sum
that overflows, a number JSON cannot spell, an instant ``datetime`` cannot hold). This step
puts every stored value back inside today's bounds, the way the schema would have refused it:

- a number that can never be true (not finite, negative, past its bound) is forgotten (NULL,
  in the row and in the event's body): the event stays, with that one figure unknown;
- a ``started_at`` outside the window becomes the time the server received the event, the
  nearest instant known to be true;
- a price override past its bounds is deleted (it can never have been meant), and so is a
  feedback left with neither a rating nor a better response;
- when an event or a rating changed, everything derived (aggregates, indexes, template
  revisions, the unpriced tally) is derived again from the repaired events, so no sum keeps
  the old values.

Finding the rows reads columns (and, for the two token counts that are only in the body,
SQLite's JSON functions): one pass, in C, over a store with nothing to repair.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from datetime import datetime, timezone
from typing import Any

from ..wire import EARLIEST, LATEST, MAX_DURATION_MS, MAX_PRICE_PER_MTOK, MAX_TOKENS
from . import _derive
from ._common import to_us

__all__ = ["repair_bounds"]

log = logging.getLogger("llmtap.store")

# The most one call can cost: every kind of token at its bound, at the highest price.
MAX_COST_USD = 4 * MAX_TOKENS * MAX_PRICE_PER_MTOK / 1_000_000
_EARLIEST_US, _LATEST_US = to_us(EARLIEST), to_us(LATEST)
_TOKENS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "total_tokens")
_DERIVED = ("agg", "agg_dims", "attr_keys", "attr_values", "event_attrs", "templates", "unpriced")

# "x NOT BETWEEN lo AND hi" is true for infinities and false for NULL (SQLite reads a NaN as
# NULL: nothing to repair there).
_BAD_EVENTS = f"""
    SELECT seq, started_us, latency_ms, ttft_ms, input_tokens, output_tokens, total_tokens,
           cost_usd, received_us, body
    FROM events
    WHERE started_us NOT BETWEEN {_EARLIEST_US} AND {_LATEST_US}
       OR latency_ms NOT BETWEEN 0 AND {MAX_DURATION_MS}
       OR ttft_ms NOT BETWEEN 0 AND {MAX_DURATION_MS}
       OR input_tokens NOT BETWEEN 0 AND {MAX_TOKENS}
       OR output_tokens NOT BETWEEN 0 AND {MAX_TOKENS}
       OR total_tokens NOT BETWEEN 0 AND {MAX_TOKENS}
       OR cost_usd NOT BETWEEN 0 AND {MAX_COST_USD}
       OR json_extract(body, '$.usage.cached_tokens') NOT BETWEEN 0 AND {MAX_TOKENS}
       OR json_extract(body, '$.usage.reasoning_tokens') NOT BETWEEN 0 AND {MAX_TOKENS}
"""
_BAD_PRICE = f"NOT BETWEEN 0 AND {MAX_PRICE_PER_MTOK}"


def repair_bounds(conn: sqlite3.Connection) -> None:
    events = _repair_events(conn)
    ratings = conn.execute("UPDATE feedback SET rating = NULL WHERE rating NOT BETWEEN 0 AND 1")
    conn.execute("DELETE FROM feedback WHERE rating IS NULL AND better_response IS NULL")
    prices = conn.execute(
        # since 0: from the start (no ``since`` given).
        "DELETE FROM price_overrides WHERE (since_us != 0 AND since_us NOT BETWEEN"
        f" {_EARLIEST_US} AND {_LATEST_US})"
        f" OR input_per_mtok {_BAD_PRICE} OR output_per_mtok {_BAD_PRICE}"
        f" OR cached_per_mtok {_BAD_PRICE} OR reasoning_per_mtok {_BAD_PRICE}"
    )
    if events or ratings.rowcount:
        _derive_again(conn)
    if events or ratings.rowcount or prices.rowcount:
        log.warning(
            "repaired values stored before the wire's bounds: %d events, %d ratings,"
            " %d price overrides deleted; the stats were derived again",
            events,
            ratings.rowcount,
            prices.rowcount,
        )


def _repair_events(conn: sqlite3.Connection) -> int:
    rows = conn.execute(_BAD_EVENTS).fetchall()
    for seq, started, latency, ttft, in_t, out_t, total, cost, received, body in rows:
        event = json.loads(body)
        if not _EARLIEST_US <= started <= _LATEST_US:
            started = received
            event["started_at"] = datetime.fromtimestamp(received / 1e6, timezone.utc).isoformat()
        latency = event["latency_ms"] = _within(latency, MAX_DURATION_MS)
        ttft = event["ttft_ms"] = _within(ttft, MAX_DURATION_MS)
        usage = event.get("usage")
        if isinstance(usage, dict):
            for name in _TOKENS:
                usage[name] = _within(usage.get(name), MAX_TOKENS)
        conn.execute(
            "UPDATE events SET started_us = ?, latency_ms = ?, ttft_ms = ?, input_tokens = ?,"
            " output_tokens = ?, total_tokens = ?, cost_usd = ?, body = ? WHERE seq = ?",
            (
                started,
                latency,
                ttft,
                _within(in_t, MAX_TOKENS),
                _within(out_t, MAX_TOKENS),
                _within(total, MAX_TOKENS),
                _within(cost, MAX_COST_USD),
                json.dumps(event, separators=(",", ":")),
                seq,
            ),
        )
    return len(rows)


def _within(value: Any, bound: float) -> Any:
    """``value`` when it is a finite number from 0 to ``bound``; else None (unknown)."""
    if isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= bound:
        return value
    return None


def _derive_again(conn: sqlite3.Connection) -> None:
    """Forget everything derived and derive it from the events as they are now."""
    for table in _DERIVED:
        conn.execute(f"DELETE FROM {table}")  # names from the tuple above
    conn.execute("INSERT INTO events_text (events_text) VALUES ('delete-all')")
    _derive.backfill(conn)
    (last,) = conn.execute("SELECT COALESCE(max(seq), 0) FROM events").fetchone()
    _derive.set_derived_through(conn, last)
