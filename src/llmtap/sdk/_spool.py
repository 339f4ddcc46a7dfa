"""The disk spool: batches waiting for the server, one file each, safe across crashes and
shared safely by several processes.

Why one file per batch, written to a temporary name and then renamed: a rename is atomic, so
a batch is in the spool whole or not at all, whatever kills the process mid-write; sending a
batch and forgetting it is one ``unlink``, with no compaction; and a file can be *claimed* by
renaming it, which lets processes share a spool directory (a forked child, the next run of
the program, several workers) without sending a batch twice: of two processes renaming the same
file, one succeeds. Each file carries a checksum, so a file torn by a power cut (the rename can
reach the disk before the data; we do not fsync, like the server's WAL) is detected and
dropped, never sent half.

File names (sorted by age): ``{time_ns}-{events}-{random}.batch``, unclaimed; with
``.{pid}`` appended, claimed by that process. A claim whose process is gone is taken over.
Temporary files start with ``.tmp-{pid}-``.
"""

from __future__ import annotations

import os
import secrets
import struct
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KIND_EVENTS", "KIND_FEEDBACK", "Entry", "Spool", "decode", "default_dir", "encode"]

KIND_EVENTS = 1
KIND_FEEDBACK = 2
_MAGIC = b"LTS1"
# magic, kind, payload length, CRC-32 of the payload
_HEADER = struct.Struct(">4sBII")
_SUFFIX = ".batch"
_TMP = ".tmp-"
# A temporary file this old belongs to a write that will never finish.
_STALE_TMP_SECONDS = 3600.0


def encode(kind: int, payload: bytes) -> bytes:
    """A spool file's bytes: a header (magic, kind, length, CRC-32) then the payload."""
    return _HEADER.pack(_MAGIC, kind, len(payload), zlib.crc32(payload)) + payload


def decode(data: bytes) -> tuple[int, bytes] | None:
    """(kind, payload) of a spool file's bytes; None when they are not a whole, intact file."""
    if len(data) < _HEADER.size:
        return None
    magic, kind, length, crc = _HEADER.unpack_from(data)
    payload = data[_HEADER.size :]
    if magic != _MAGIC or kind not in (KIND_EVENTS, KIND_FEEDBACK) or length != len(payload):
        return None
    if zlib.crc32(payload) != crc:
        return None
    return kind, payload


def default_dir() -> Path:
    """The user's cache folder for llmtap's spool, per platform."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llmtap" / "spool"


@dataclass
class Entry:
    """One batch waiting to be sent: a file in the spool (``path``), or only in memory when
    there is no spool (``path`` None). ``body`` is kept in memory while memory allows."""

    kind: int
    count: int
    size: int
    path: Path | None = None
    body: bytes | None = None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        return True  # no safe probe there: a claim is taken over only when stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, another user's
    return True


def _parse(name: str) -> tuple[str, int, int | None] | None:
    """(base name, event count, owner pid or None) of a spool file's name."""
    base, sep, owner = name.partition(_SUFFIX)
    if not sep or (owner and not owner[1:].isdigit()):
        return None
    parts = base.split("-")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return base, int(parts[1]), int(owner[1:]) if owner else None


class Spool:
    """A spool directory, seen from one process. Not thread-safe: the exporter's sending thread
    owns it (the building thread only calls :meth:`write`, which touches no shared state but
    the byte count)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.pid = os.getpid()
        self.dropped = 0  # events dropped because the spool was full
        directory.mkdir(parents=True, exist_ok=True)
        self.bytes = sum(p.stat().st_size for p in self._files())

    def _files(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir() if _SUFFIX in p.name)
        except FileNotFoundError:
            return []

    def write(self, kind: int, payload: bytes, count: int) -> Entry:
        """Put a batch in the spool, claimed by this process; its entry. OSError when the
        disk will not take it."""
        data = encode(kind, payload)
        if self.bytes + len(data) > self.max_bytes:
            self._make_room(len(data))
        token = secrets.token_hex(4)
        tmp = self.directory / f"{_TMP}{self.pid}-{token}"
        final = self.directory / f"{time.time_ns():020d}-{count}-{token}{_SUFFIX}.{self.pid}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, final)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        self.bytes += len(data)
        return Entry(kind, count, len(data), final, payload)

    def _make_room(self, needed: int) -> None:
        """Drop the oldest batches until ``needed`` more bytes fit."""
        for path in self._files():
            if self.bytes + needed <= self.max_bytes:
                return
            parsed = _parse(path.name)
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            self.bytes -= size
            self.dropped += parsed[1] if parsed else 0
        self.bytes = max(self.bytes, 0)

    def read(self, entry: Entry) -> bytes | None:
        """The payload of a claimed entry; None when its file is gone or damaged (then it is
        removed)."""
        if entry.body is not None:
            return entry.body
        assert entry.path is not None
        try:
            data = entry.path.read_bytes()
        except FileNotFoundError:
            return None
        decoded = decode(data)
        if decoded is None:
            self.remove(entry)
            return None
        entry.kind = decoded[0]
        return decoded[1]

    def remove(self, entry: Entry) -> None:
        """Forget a batch: sent, or given up on."""
        if entry.path is None:
            return
        try:
            entry.path.unlink()
        except FileNotFoundError:
            return
        self.bytes = max(self.bytes - entry.size, 0)

    def adopt(self) -> list[Entry]:
        """Claim the batches no live process is sending (left by a process that ended, or
        released), oldest first. Also removes temporary files whose writer is gone."""
        adopted = []
        now = time.time()
        for path in self._scan():
            name = path.name
            if name.startswith(_TMP):
                self._clean_tmp(path, now)
                continue
            parsed = _parse(name)
            if parsed is None:
                continue
            base, count, owner = parsed
            if owner == self.pid:
                continue  # ours: the building thread may have just written it
            # Windows has no safe liveness probe: there a claim is taken over once stale.
            stale = sys.platform == "win32" and now - _mtime(path) > _STALE_TMP_SECONDS
            if owner is not None and _alive(owner) and not stale:
                continue
            claimed = self.directory / f"{base}{_SUFFIX}.{self.pid}"
            try:
                os.replace(path, claimed)
                size = claimed.stat().st_size
            except FileNotFoundError:
                continue  # another process claimed it first
            adopted.append(Entry(KIND_EVENTS, count, size, claimed, None))
        return adopted

    def _scan(self) -> list[Path]:
        try:
            return sorted(self.directory.iterdir())
        except FileNotFoundError:
            return []

    def _clean_tmp(self, path: Path, now: float) -> None:
        pid = path.name[len(_TMP) :].split("-")[0]
        gone = pid.isdigit() and int(pid) != self.pid and not _alive(int(pid))
        if gone or now - _mtime(path) > _STALE_TMP_SECONDS:
            path.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()
