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

The batches hold prompts and personal data (unless redaction is on), so they are private: the
folder is created readable by its owner only (0700) and its files 0600; a folder that another
user owns or can write to, or that is a symbolic link, is refused (the exporter then keeps
undelivered events in memory); files are opened without following symbolic links, and a file
that is not a regular one of ours is never adopted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
import struct
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KIND_EVENTS",
    "KIND_FEEDBACK",
    "Entry",
    "Spool",
    "SpoolRefused",
    "decode",
    "default_dir",
    "encode",
    "spool_directory",
]

KIND_EVENTS = 1
KIND_FEEDBACK = 2
_MAGIC = b"LTS2"
# Files of llmtap versions before LTS2, still read (what an upgrade finds in the spool): their
# CRC covers the payload alone, so a damaged kind went unseen there.
_MAGIC_PAYLOAD_CRC = b"LTS1"
# magic, kind, payload length, CRC-32 of the kind, the length and the payload
_HEADER = struct.Struct(">4sBII")
_CHECKED = struct.Struct(">BI")  # the header's fields the CRC covers
_SUFFIX = ".batch"
_TMP = ".tmp-"
# A temporary file this old belongs to a write that will never finish.
_STALE_TMP_SECONDS = 3600.0
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows, which has no such symlink attack
_BINARY = getattr(os, "O_BINARY", 0)
_UID = os.getuid() if hasattr(os, "getuid") else None


class SpoolRefused(PermissionError):
    """The spool folder is not safe to keep private data in."""


def encode(kind: int, payload: bytes) -> bytes:
    """A spool file's bytes: a header (magic, kind, length, CRC-32) then the payload."""
    return _HEADER.pack(_MAGIC, kind, len(payload), _crc(kind, payload)) + payload


def _crc(kind: int, payload: bytes) -> int:
    # The kind too: a bit flipped there would post a batch of events as feedback.
    return zlib.crc32(payload, zlib.crc32(_CHECKED.pack(kind, len(payload))))


def decode(data: bytes) -> tuple[int, bytes] | None:
    """(kind, payload) of a spool file's bytes; None when they are not a whole, intact file."""
    if len(data) < _HEADER.size:
        return None
    magic, kind, length, crc = _HEADER.unpack_from(data)
    payload = data[_HEADER.size :]
    if kind not in (KIND_EVENTS, KIND_FEEDBACK) or length != len(payload):
        return None
    if magic == _MAGIC:
        intact = _crc(kind, payload) == crc
    else:
        intact = magic == _MAGIC_PAYLOAD_CRC and zlib.crc32(payload) == crc
    return (kind, payload) if intact else None


def default_dir() -> Path:
    """The user's cache folder for llmtap's spool, per platform."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llmtap" / "spool"


def spool_directory(url: str, api_key: str | None, spool_dir: str | None) -> Path:
    """The spool folder of a server and key: shared by every process sending there with that
    key, so that one takes over what another left."""
    key = f"{url}\0{api_key or ''}".encode()
    base = Path(spool_dir) if spool_dir else default_dir()
    return base / hashlib.sha256(key).hexdigest()[:16]


@dataclass
class Entry:
    """One batch waiting to be sent: a file in the spool (``path``), or only in memory when
    there is no spool (``path`` None). ``body`` is kept in memory while memory allows."""

    kind: int
    count: int
    size: int
    path: Path | None = None
    body: bytes | None = None
    owner: int | None = None  # for a batch dropped from the spool: the process it was claimed by


def _private_dir(directory: Path) -> None:
    """Create ``directory`` readable by its owner only, or check an existing one is: a real
    folder (not a symbolic link) of this user's, which no other user can write to, in a parent
    no other user can rename it in. SpoolRefused when it is not."""
    # Each missing folder on the way made the owner's alone (``parents=True`` would make the
    # ones above the last with the umask's mode: 0777 under a umask of 0).
    for folder in [*reversed(directory.parent.parents), directory.parent]:
        if not folder.exists():
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise SpoolRefused(f"{directory} is not a folder (a symbolic link is not followed)")
    if _UID is None:
        return
    if info.st_uid != _UID:
        raise SpoolRefused(f"{directory} belongs to another user (uid {info.st_uid})")
    if info.st_mode & 0o022:
        raise SpoolRefused(f"{directory} can be written by other users")
    if info.st_mode & 0o077:
        os.chmod(directory, 0o700)  # ours, but readable by others (made by an older version)
    parent = os.stat(directory.parent)
    others_write = parent.st_mode & 0o002 or parent.st_uid not in (_UID, 0)
    if others_write and not parent.st_mode & stat.S_ISVTX:
        raise SpoolRefused(f"another user can replace {directory} (its parent is not private)")


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
        _private_dir(directory)
        self.bytes = 0
        for path in self._files():
            try:
                self.bytes += _size(path)
            except FileNotFoundError:  # sent meanwhile by another process
                continue

    def _files(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir() if _SUFFIX in p.name)
        except FileNotFoundError:
            return []

    def write(self, kind: int, payload: bytes, count: int) -> tuple[Entry, list[Entry]]:
        """Put a batch in the spool, claimed by this process: its entry, and the batches
        dropped to make room for it (oldest first). OSError when the disk will not take it."""
        data = encode(kind, payload)
        evicted = self._make_room(len(data)) if self.bytes + len(data) > self.max_bytes else []
        token = secrets.token_hex(4)
        tmp = self.directory / f"{_TMP}{self.pid}-{token}"
        final = self.directory / f"{time.time_ns():020d}-{count}-{token}{_SUFFIX}.{self.pid}"
        try:
            # O_EXCL: never write through a file (or link) someone put there.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY
            with os.fdopen(os.open(tmp, flags, 0o600), "wb") as f:
                f.write(data)
            os.replace(tmp, final)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        self.bytes += len(data)
        return Entry(kind, count, len(data), final, payload), evicted

    def _make_room(self, needed: int) -> list[Entry]:
        """Drop the oldest batches until ``needed`` more bytes fit; the dropped ones."""
        evicted = []
        for path in self._files():
            if self.bytes + needed <= self.max_bytes:
                break
            parsed = _parse(path.name)
            try:
                size = _size(path)
                path.unlink()
            except OSError:  # gone meanwhile, or not a file (a folder by that name)
                continue
            self.bytes -= size
            if parsed is not None:
                evicted.append(Entry(KIND_EVENTS, parsed[1], size, path, None, parsed[2]))
        self.bytes = max(self.bytes, 0)
        return evicted

    def read(self, entry: Entry) -> bytes | None:
        """The payload of a claimed entry; None when its file is gone or damaged (then it is
        removed)."""
        if entry.body is not None:
            return entry.body
        assert entry.path is not None
        try:
            fd = os.open(entry.path, os.O_RDONLY | _NOFOLLOW | _BINARY)
        except FileNotFoundError:
            return None
        except OSError:  # a symbolic link where a batch was: not ours to read
            data = b""
        else:
            with os.fdopen(fd, "rb") as f:
                data = f.read() if stat.S_ISREG(os.fstat(fd).st_mode) else b""
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
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode) or (_UID is not None and info.st_uid != _UID):
                continue  # a link, or another user's file: never sent as ours
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
            # Not a file (a folder by that name) is not ours to clean.
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    return os.lstat(path).st_size


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()
