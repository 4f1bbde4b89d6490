"""Archive files of the retention: gzip-compressed JSONL, one stored document a line, with a
manifest that records each file's line count and sha256, so an archive is checked before
anything it holds is deleted and before it is restored.

Lines are MongoDB Extended JSON (relaxed): documents come back exactly as they were stored
(dates as dates, string `_id`s, escaped keys). Files are written to a temporary name, fsynced
and renamed, so a crash leaves either no file or a whole one; the gzip header carries no name
or time, so the same documents always give the same bytes and the same checksum.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from bson import json_util
from bson.json_util import JSONMode, JSONOptions

from chatadmin.exceptions import ChatAdminError

JSON_OPTIONS = JSONOptions(json_mode=JSONMode.RELAXED, tz_aware=True, tzinfo=UTC)
MANIFEST = "manifest.json"
FORMAT = "chatadmin-archive/1"


class ArchiveError(ChatAdminError):
    """An archive file is missing, unreadable or does not match its manifest."""

    code = "archive_invalid"


@dataclass
class Written:
    """What `ArchiveWriter` wrote: lines, compressed bytes and their sha256."""

    count: int
    sha256: str
    bytes: int


class _Hashing:
    """A binary file wrapper that hashes and counts what passes through it."""

    def __init__(self, raw) -> None:
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data

    def flush(self) -> None:
        self.raw.flush()


def dumps(doc: dict[str, Any]) -> str:
    """One archive line of a stored document."""
    return json_util.dumps(doc, json_options=JSON_OPTIONS)


def loads(line: str | bytes) -> dict[str, Any]:
    """The stored document of one archive line."""
    return json_util.loads(line, json_options=JSON_OPTIONS)


class ArchiveWriter:
    """Write documents to `path` (`.jsonl.gz`) atomically: `with ArchiveWriter(p) as w:`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.count = 0
        self.result: Written | None = None

    def __enter__(self) -> ArchiveWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._raw = open(self.tmp, "wb")  # closed in __exit__
        self._hash = _Hashing(self._raw)
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._hash, mtime=0)
        return self

    def write(self, doc: dict[str, Any]) -> None:
        self._gz.write(dumps(doc).encode() + b"\n")
        self.count += 1

    def __exit__(self, kind, exc, tb) -> None:
        try:
            self._gz.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
        finally:
            self._raw.close()
        if kind is not None:
            self.tmp.unlink(missing_ok=True)
            return
        os.replace(self.tmp, self.path)
        fsync_dir(self.path.parent)
        self.result = Written(self.count, self._hash.digest.hexdigest(), self._hash.size)


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The documents of an archive file, streamed (unchecked: `verify` first)."""
    try:
        with gzip.open(path, "rb") as f:
            for line in f:
                if line.strip():
                    yield loads(line)
    except FileNotFoundError:
        raise ArchiveError(f"archive file {path} is missing") from None
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise ArchiveError(f"archive file {path} is unreadable: {exc}") from None


def verify(path: Path, count: int, sha256: str, org_id: str | None = None) -> None:
    """Re-read a whole archive file: its checksum, its line count, every line parses (and
    belongs to `org_id`); raises ArchiveError on the first mismatch."""
    lines = 0
    try:
        with open(path, "rb") as raw:
            hashing = _Hashing(raw)
            with gzip.GzipFile(fileobj=hashing, mode="rb") as f:
                for line in f:
                    if not line.strip():
                        continue
                    doc = loads(line)
                    if org_id is not None and doc.get("org_id") != org_id:
                        raise ArchiveError(f"{path}: line {lines + 1} belongs to another org")
                    lines += 1
            while hashing.read(1 << 16):
                pass  # bytes past the gzip stream count in the checksum too
    except FileNotFoundError:
        raise ArchiveError(f"archive file {path} is missing") from None
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise ArchiveError(f"archive file {path} is unreadable: {exc}") from None
    digest = hashing.digest.hexdigest()
    if digest != sha256:
        raise ArchiveError(f"{path}: sha256 {digest} does not match the manifest's {sha256}")
    if lines != count:
        raise ArchiveError(f"{path}: {lines} documents, the manifest says {count}")


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Write `manifest.json` of a run directory atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / MANIFEST
    tmp = run_dir / f".{MANIFEST}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({"format": FORMAT, **manifest}, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(run_dir)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of a run directory."""
    path = run_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArchiveError(f"no {MANIFEST} in {run_dir}") from None
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"{path} is unreadable: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise ArchiveError(f"{path} is not a chatadmin archive manifest")
    return manifest


def find_run_dir(path: Path) -> tuple[Path, str | None]:
    """The run directory holding `path` (a run directory, its manifest or one of its files)
    and, for a file, its path relative to the run directory."""
    if not path.exists():
        raise ArchiveError(f"{path} does not exist")
    path = path.resolve()
    if path.is_dir():
        return path, None
    if path.name == MANIFEST:
        return path.parent, None
    for parent in path.parents:
        if (parent / MANIFEST).exists():
            return parent, str(path.relative_to(parent))
    raise ArchiveError(f"{path} is not inside a retention archive (no {MANIFEST} above it)")


def remove_run_dir(run_dir: Path) -> bool:
    """Delete an archive run directory (its files and manifest); False when it was gone."""
    if not run_dir.exists():
        return False
    for child in sorted(run_dir.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(FileNotFoundError):
            child.rmdir() if child.is_dir() else child.unlink()
    run_dir.rmdir()
    return True
