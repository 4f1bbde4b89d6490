"""The durable spool (seed 003's fallback, done safely): writes accepted while MongoDB is
unreachable, kept in local append-only files until they can be applied.

Each app process appends to a segment of its own (`seg-<time>-<pid>-<n>.open`), holding an
exclusive `flock` on it while it is open; a record is one JSON line with its sha256, and
`append` returns only after `fsync` (and, for a new segment, after the directory's `fsync`),
so what was answered `202` survives a crash of the process or of the machine.

Replay takes whole segments: a sealed one (`.ready`), or an open one whose writer is gone (its
lock can be taken: a killed process holds no lock). A segment is claimed by renaming it to
`.replaying` under the replayer's lock, applied in order (records are idempotent by their ids,
so a segment replayed twice after a crash writes nothing twice), and deleted when done. A torn
last line (a crash in the middle of a write) was never acknowledged and is skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("chatadmin.spool")

OPEN, READY, REPLAYING = ".open", ".ready", ".replaying"


class SpoolFull(Exception):
    """The spool holds its configured maximum; nothing more is accepted."""


@dataclass
class Segment:
    """A segment being replayed: its path and the lock that keeps it ours."""

    path: Path
    fd: int

    def records(self) -> Iterator[dict]:
        """Its records in order; a torn or corrupt line ends the segment (it was never
        acknowledged: acknowledged lines are followed by an fsync)."""
        with open(self.path, "rb") as f:
            for number, line in enumerate(f, 1):
                try:
                    digest, payload = line.rstrip(b"\n").split(b" ", 1)
                    if not line.endswith(b"\n"):
                        raise ValueError("torn line")
                    if hashlib.sha256(payload).hexdigest().encode() != digest:
                        raise ValueError("checksum mismatch")
                    yield json.loads(payload)
                except ValueError as exc:
                    log.warning("spool %s line %d skipped: %s", self.path.name, number, exc)
                    return

    def done(self) -> None:
        """Every record applied: the segment goes."""
        self.path.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)
        self.release()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on `path`, or None when another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class Spool:
    """This process's side of the spool directory."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._path: Path | None = None
        self._names = itertools.count()

    def _open(self) -> int:
        if self._fd is None:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            name = f"seg-{time.time_ns():020d}-{os.getpid()}-{next(self._names)}{OPEN}"
            path = self.dir / name
            # Locked under a name replay does not list, then renamed: a replayer never finds a
            # new segment unlocked (it would take it, and this process's writes would go to a
            # file it deletes).
            hidden = self.dir / f".new-{name}"
            fd = os.open(hidden, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else knows the name
            os.rename(hidden, path)
            _fsync_dir(self.dir)
            self._fd, self._path = fd, path
        return self._fd

    def append(self, records: list[dict]) -> None:
        """Write records durably (SpoolFull past the configured size)."""
        lines = []
        for record in records:
            payload = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
            lines.append(hashlib.sha256(payload).hexdigest().encode() + b" " + payload + b"\n")
        data = b"".join(lines)
        if self.size() + len(data) > self.max_bytes:
            raise SpoolFull(f"the spool holds its maximum of {self.max_bytes} bytes")
        fd = self._open()
        os.write(fd, data)
        os.fsync(fd)

    def seal(self) -> None:
        """Close this process's open segment, ready for replay."""
        if self._fd is None:
            return
        path, fd = self._path, self._fd
        self._fd = self._path = None
        os.rename(path, path.with_suffix(READY))
        _fsync_dir(self.dir)
        os.close(fd)

    def _segments(self) -> list[Path]:
        if not self.dir.exists():
            return []
        return sorted(p for p in self.dir.iterdir() if p.name.startswith("seg-"))

    def size(self) -> int:
        """Bytes waiting in the spool, every process's segments together."""
        total = 0
        for path in self._segments():
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def status(self) -> dict:
        """What waits: segments and bytes (for /readyz and `manage.py spool --status`)."""
        segments = self._segments()
        return {"segments": len(segments), "bytes": self.size(), "dir": str(self.dir)}

    def claim(self) -> Iterator[Segment]:
        """Segments to replay, oldest first, each locked for this process: sealed ones, and
        open or half-replayed ones whose process is gone."""
        self.seal()
        for path in self._segments():
            fd = _try_lock(path)
            if fd is None:
                continue  # its writer or another replayer holds it
            if not path.exists():  # renamed or deleted between the listing and the lock
                os.close(fd)
                continue
            target = path.with_suffix(REPLAYING)
            if path != target:
                os.rename(path, target)
                _fsync_dir(self.dir)
            yield Segment(target, fd)
