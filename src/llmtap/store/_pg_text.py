"""PostgreSQL's dialect (see ``_dialect``): the text index for ``q=`` and the summary columns.

SQLite's FTS5 index (``unicode61``, diacritics removed) splits text into runs of letters and
digits, case-folded; a query matches events holding every word. PostgreSQL's own parsers split
differently (``a.b`` is one host name, ``a-b`` three tokens), so the tokens are made here, the
same way for the text and the query, and stored as a ``tsvector`` of plain lexemes
(no parser of its own) under a GIN index; a query is the AND of its tokens (``@@``).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from . import _hist
from ._bulk import insert_many
from ._common import search_words
from ._dialect import SUMMARY_CHARS, Dialect
from ._sql import marks

__all__ = ["POSTGRES", "PostgresDialect", "tokens"]

_TOKEN = re.compile(r"[^\W_]+")
# PostgreSQL's limits: a lexeme under 2 KiB, a tsvector under 1 MiB. Longer tokens are not
# searchable (nobody types them); a text past the budget is indexed up to it.
_MAX_TOKEN_BYTES = 512
_MAX_TSVECTOR_BYTES = 900_000
# A token of this many characters has at most 4 times as many bytes: under the limit.
_SHORT_TOKEN = _MAX_TOKEN_BYTES // 4
# A text this long cannot pass the budget: its distinct tokens hold at most 4 bytes a
# character, and there is at most one token (of 8 bytes' overhead) per 2 characters.
_SHORT_CHARS = _MAX_TSVECTOR_BYTES // 8
# Every ASCII character but letters and digits, to a space (``str.split``'s separator).
_ASCII_SPACES = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})


def tokens(text: str) -> list[str]:
    """The distinct searchable tokens of ``text``: letters and digits, lower case, without
    diacritics, in order of first appearance."""
    folded = text.lower()
    if folded.isascii():
        # ASCII has no diacritic to take off, and its letters and digits are [a-z0-9] once
        # lower-cased: a translation and a split, twice as fast as the pattern.
        found = folded.translate(_ASCII_SPACES).split()
    else:
        folded = unicodedata.normalize("NFKD", folded)
        folded = "".join(c for c in folded if not unicodedata.combining(c))
        found = _TOKEN.findall(folded)
    distinct = dict.fromkeys(found)
    if len(folded) <= _SHORT_CHARS:  # under the budget whatever its tokens: no count kept
        return [
            t for t in distinct if len(t) <= _SHORT_TOKEN or len(t.encode()) <= _MAX_TOKEN_BYTES
        ]
    out: list[str] = []
    size = 0
    for token in distinct:
        n = len(token.encode())
        if n > _MAX_TOKEN_BYTES:
            continue
        size += n + 8
        if size > _MAX_TSVECTOR_BYTES:
            break
        out.append(token)
    return out


# A body as jsonb, for the summary columns. jsonb cannot hold NUL (\u0000 in the JSON text):
# it becomes U+FFFD, as NUL does everywhere on PostgreSQL (see ``_pg.param``).
_JSONB = "CAST(replace(e.body, '\\u0000', '\\ufffd') AS jsonb)"


class PostgresDialect(Dialect):
    name = "postgresql"
    summary = (
        f"({_JSONB} - ARRAY['request', 'response', 'template_chat', 'template_text',"
        " 'template_params', 'attributes', 'output_text', 'error'])::text,"
        f" substr({_JSONB} ->> 'output_text', 1, {SUMMARY_CHARS}),"
        f" {_JSONB} #>> '{{error,type}}',"
        f" substr({_JSONB} #>> '{{error,message}}', 1, {SUMMARY_CHARS}),"
        f" {_JSONB} #> '{{error,status_code}}'"
    )
    extra_usage = f"{_JSONB} #> '{{usage,cached_tokens}}', {_JSONB} #> '{{usage,reasoning_tokens}}'"
    sort_keys = {
        "started_at": "e.started_us",
        "latency_ms": "COALESCE(e.latency_ms, -1)",
        "cost_usd": "COALESCE(e.cost_usd, -1)",
    }

    def hist_sum(self, column: str) -> str:
        # The blobs of the group, merged in Python (a big-integer sum each, ~1 us). The
        # database's own llmtap_hist_sum (PL/pgSQL, byte by byte) took 240 us a stored row:
        # 1.5 s for the stats of 40,000 events by model and day (see BENCHMARKS.md).
        return f"array_agg({column}) FILTER (WHERE {column} IS NOT NULL)"

    def hist_of(self, value: Any) -> int:
        return _hist.merge(value or ())

    def stored_histograms(
        self, conn: Any, keys: list[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], tuple[bytes | None, bytes | None]] | None:
        # One statement for the chunk's thousands of keys: five arrays, unnested together.
        # The keys are integers: their text is all an array literal needs.
        if not keys:
            return {}
        found = conn.execute(
            "SELECT a.project_id, a.level, a.attr_id, a.bucket, a.dims_id, a.lat, a.ttft"
            " FROM unnest(CAST(? AS bigint[]), CAST(? AS bigint[]), CAST(? AS bigint[]),"
            " CAST(? AS bigint[]), CAST(? AS bigint[])) AS k (p, l, at, b, d)"
            " JOIN agg a ON a.project_id = k.p AND a.level = k.l AND a.attr_id = k.at"
            " AND a.bucket = k.b AND a.dims_id = k.d"
            " WHERE a.lat IS NOT NULL OR a.ttft IS NOT NULL",
            # Array literals made here: psycopg's own dumping of 200,000 values took 0.45 s.
            ["{" + ",".join(map(str, column)) + "}" for column in zip(*keys, strict=True)],
        )
        return {tuple(row[:5]): (row[5], row[6]) for row in found}

    def text_match(self, alias: str, project_id: int, text: str) -> tuple[str, list[Any]] | None:
        words = search_words(text)
        if not words:
            return None
        wanted = tokens(" ".join(words))
        if not wanted:
            return "1 = 0", []
        query = " & ".join(f"'{t}'" for t in wanted)  # tokens hold no quote
        return (
            f"{alias}.seq IN (SELECT seq FROM events_text WHERE project_id = ?"
            " AND tsv @@ CAST(? AS tsquery))",
            [project_id, query],
        )

    def attr_match(self, alias: str) -> str:
        # Looked up by hashes (values can pass what a B-tree entry holds), then compared.
        return (
            f"{alias}.seq IN (SELECT seq FROM event_attrs WHERE project_id = ?"
            " AND md5(key) = md5(?) AND md5(value) = md5(?) AND key = ? AND value = ?)"
        )

    def attr_params(self, project_id: int, key: str, value: str) -> list[Any]:
        return [project_id, key, value, key, value]

    def index_texts(self, conn: Any, rows: list[tuple[int, int, str]]) -> None:
        found = [(p, s, t) for p, s, text in rows if (t := tokens(text))]
        insert_many(
            conn,
            "INSERT INTO events_text (project_id, seq, tsv)",
            # A tsvector literal of plain lexemes: 'a' 'b' (tokens hold no quote; each list
            # has one at least). One join, not one f-string a token: 8 times faster.
            [(p, s, "'" + "' '".join(t) + "'") for p, s, t in found],
            "ON CONFLICT DO NOTHING",
        )

    def unindex_texts(self, conn: Any, rows: list[tuple[int, int, str]]) -> None:
        for project_id, seq, _ in rows:
            conn.execute(
                "DELETE FROM events_text WHERE project_id = ? AND seq = ?", (project_id, seq)
            )

    # Ids are unique through ``event_ids`` (a partitioned ``events`` cannot hold them unique).
    def remember_ids(self, conn: Any, rows: list[tuple[int, str]]) -> None:
        insert_many(conn, "INSERT INTO event_ids (project_id, id)", rows, "ON CONFLICT DO NOTHING")

    def forget_ids(self, conn: Any, project_id: int, seqs: list[int]) -> None:
        conn.execute(
            "DELETE FROM event_ids WHERE project_id = ? AND id IN (SELECT id FROM events"
            f" WHERE project_id = ? AND seq IN ({marks(seqs)}))",
            (project_id, project_id, *seqs),
        )


POSTGRES = PostgresDialect()
