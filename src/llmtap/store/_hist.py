"""Latency histograms: log-spaced buckets from which percentiles are read within 2.5%.

A value ``x`` (milliseconds) falls in bucket ``i = ceil(log(x / MIN_MS) / log(GAMMA))``, the
interval ``(MIN_MS * GAMMA**(i-1), MIN_MS * GAMMA**i]``; the bucket reads back as the value
whose relative distance to both ends is ``(GAMMA - 1) / (GAMMA + 1)``, about 2.4% (the scheme of
DDSketch). Values at or under ``MIN_MS`` share bucket 0, values past ``MAX_MS`` the last one.

A histogram is held as one Python ``int`` with a 32-bit count per bucket, so merging two is one
big-integer addition (done in C: merging thousands of stored histograms takes milliseconds).
Stored, it is two bytes of the lowest bucket used, then the packed counts from there on.
"""

from __future__ import annotations

import bisect
import itertools
import math
from array import array
from collections.abc import Iterable, Sequence

__all__ = [
    "GAMMA",
    "bucket_of",
    "coarse_counts",
    "decode",
    "encode",
    "exact_percentile",
    "hist_add",
    "histogram",
    "percentiles",
    "value_of",
]

GAMMA = 1.05
MIN_MS = 0.01
MAX_MS = 1e8
_LOG_GAMMA = math.log(GAMMA)
_LAST = math.ceil(math.log(MAX_MS / MIN_MS) / _LOG_GAMMA)
_BITS = 32
_MASK = (1 << _BITS) - 1
_BYTES = _BITS // 8


def bucket_of(x: float) -> int:
    if x <= MIN_MS:
        return 0
    if x >= MAX_MS:  # also keeps x / MIN_MS finite
        return _LAST
    return min(_LAST, math.ceil(math.log(x / MIN_MS) / _LOG_GAMMA))


def value_of(bucket: int) -> float:
    if bucket == 0:
        return MIN_MS
    return MIN_MS * 2 * GAMMA**bucket / (GAMMA + 1)


def histogram(values: Iterable[float | None]) -> int:
    """The histogram of ``values`` (``None`` skipped)."""
    h = 0
    for x in values:
        if x is not None:
            h += 1 << (bucket_of(x) * _BITS)
    return h


def encode(h: int) -> bytes | None:
    if not h:
        return None
    low = (h & -h).bit_length() - 1
    lo = low // _BITS
    shifted = h >> (lo * _BITS)
    return lo.to_bytes(2, "little") + shifted.to_bytes((shifted.bit_length() + 7) // 8, "little")


def decode(blob: bytes | None) -> int:
    if not blob:
        return 0
    lo = int.from_bytes(blob[:2], "little")
    return int.from_bytes(blob[2:], "little") << (lo * _BITS)


def hist_add(a: bytes | None, b: bytes | None) -> bytes | None:
    """Merge two stored histograms (registered as the SQL function ``llmtap_hist_add``)."""
    if not a:
        return b
    if not b:
        return a
    return encode(decode(a) + decode(b))


def merge(blobs: Iterable[bytes | None]) -> int:
    """The histogram of several stored ones merged (what ``HistSum`` does in SQL), in one
    loop: thousands of blobs per stats request on PostgreSQL."""
    by_low: dict[bytes, int] = {}
    get = by_low.get
    for blob in blobs:
        if blob:
            head = blob[:2]
            by_low[head] = get(head, 0) + int.from_bytes(blob[2:], "little")
    return _placed(by_low)


def _placed(by_low: dict[bytes, int]) -> int:
    """The histogram of packed counts summed per lowest bucket (a blob's 2-byte head), each
    sum shifted into its place."""
    h = 0
    for head, packed in by_low.items():
        h += packed << (int.from_bytes(head, "little") * _BITS)
    return h


class HistSum:
    """SQL aggregate ``llmtap_hist_sum(blob)``: the merge of stored histograms, so a stats
    query can sum them in SQLite and hand Python one row per group."""

    def __init__(self) -> None:
        # Packed counts summed per lowest bucket (the blob's 2-byte head), shifted into
        # place once at the end: most rows share a few heads, and adding the short unshifted
        # integers is a third cheaper than decoding each (this runs once per stored row).
        self.by_low: dict[bytes, int] = {}

    def step(self, blob: bytes | None, /) -> None:
        if blob:
            head = blob[:2]
            by_low = self.by_low
            by_low[head] = by_low.get(head, 0) + int.from_bytes(blob[2:], "little")

    def finalize(self) -> bytes | None:
        return encode(_placed(self.by_low))


def _counts(h: int) -> array[int]:
    raw = h.to_bytes(((h.bit_length() + 31) // 32) * _BYTES, "little")
    counts = array("I")
    counts.frombytes(raw)
    if counts.itemsize != _BYTES:  # pragma: no cover - every platform we run on has 4-byte I
        raise RuntimeError("array('I') is not 32 bits here")
    return counts


def percentiles(h: int, qs: Iterable[float]) -> list[float | None]:
    """The nearest-rank percentiles ``qs`` (0 < q <= 1) of histogram ``h``."""
    qs = list(qs)
    if not h:
        return [None for _ in qs]
    # Running totals once, then each rank found by bisection.
    running = list(itertools.accumulate(_counts(h)))
    total = running[-1]
    return [value_of(bisect.bisect_left(running, max(1, math.ceil(q * total)))) for q in qs]


def coarse_counts(h: int, edges: Sequence[float]) -> list[int]:
    """How many values of ``h`` fall at or under each of ``edges`` (ascending) and above the
    previous one, then how many past the last: a histogram of a few bars. An edge stands for
    the end of its bucket, so a value within 5% over it may count under it."""
    counts = _counts(h) if h else array("I")
    out, start = [], 0
    for edge in edges:
        end = bucket_of(edge) + 1
        out.append(sum(counts[start:end]))
        start = end
    out.append(sum(counts[start:]))
    return out


def exact_percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile of ``values``: what :func:`percentiles` approximates."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]
