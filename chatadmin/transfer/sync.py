"""`manage.py sync FOLDER`: seed 003's folder of JSON conversations, kept in step.

Each run imports the files that are new or changed since the last run and remembers what it
saw in a small state file: per file, its size, mtime and sha256. A file whose size and mtime
are unchanged is not read again; one that was touched but has the same content is not imported
again either. A file is remembered only once it imported without errors, so a failed one is
tried again next time. The state is written atomically after every file, so an interrupted run
resumes where it stopped.

Why a file and not a collection: the state is only a shortcut. Import is idempotent (ids come
from the files), so a lost or stale state costs a re-read that changes nothing; and a file
needs no new model or migration. Its default place is under `CHATADMIN_DATA_DIR/sync/`, one
per org, folder and database; `--state` puts it elsewhere. A lock beside it stops two runs on
the same state at once. Files that disappear are left alone (their threads stay).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chatadmin.clock import utcnow
from chatadmin.models.schema import iso_ms
from chatadmin.transfer.importer import Importer, Options, Summary
from chatadmin.transfer.reader import Source

PATTERNS = ("*.json", "*.json.gz", "*.jsonl", "*.jsonl.gz")
VERSION = 1


class SyncBusy(Exception):
    """Another sync holds the state's lock."""


@dataclass
class SyncSummary:
    """What a sync run did."""

    state: str
    seen: int = 0
    unchanged: int = 0
    imported: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    summary: Summary | None = None

    def lines(self) -> list[str]:
        out = [
            f"sync: {self.seen} files, {len(self.imported)} imported, {self.unchanged} unchanged, "
            f"{len(self.failed)} failed (state {self.state})"
        ]
        if self.summary is not None and self.summary.files:
            out += self.summary.lines()
        return out


def default_state(data_dir: Path, org_id: str, folder: Path, database: str) -> Path:
    """Where the state of syncing `folder` into `org_id` of `database` lives by default."""
    key = hashlib.sha256(f"{database}\n{org_id}\n{folder.resolve()}".encode()).hexdigest()[:16]
    return data_dir / "sync" / f"{org_id}-{key}.json"


def files_of(folder: Path) -> list[Path]:
    found = {p for pattern in PATTERNS for p in folder.glob(pattern) if p.is_file()}
    return sorted(p for p in found if not p.name.startswith("."))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_state(path: Path, folder: Path, org_id: str) -> dict:
    """The state of earlier runs (empty when there is none or it cannot be read)."""
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        state = None
    if not isinstance(state, dict) or not isinstance(state.get("files"), dict):
        state = {"files": {}}
    state.update(version=VERSION, folder=str(folder.resolve()), org_id=org_id)
    return state


def save_state(path: Path, state: dict) -> None:
    """Write the state whole, then move it into place (never half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on the state for this run (SyncBusy if another run holds it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SyncBusy(f"another sync is running with {path}") from None
        yield


def changed_files(folder: Path, seen: dict) -> tuple[list[tuple[str, Path, dict]], int]:
    """The files to import (name, path, what to remember once imported), and how many are
    unchanged; touched files with the same content are remembered with their new mtime."""
    todo, unchanged = [], 0
    for path in files_of(folder):
        name = path.relative_to(folder).as_posix()
        stat = path.stat()
        known = seen.get(name) or {}
        if known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
            unchanged += 1
            continue
        digest = sha256_of(path)
        if known.get("sha256") == digest:
            seen[name] = {**known, "mtime_ns": stat.st_mtime_ns}
            unchanged += 1
            continue
        todo.append(
            (name, path, {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest})
        )
    return todo, unchanged


async def sync_folder(
    folder: Path, options: Options, state_path: Path, progress: Callable[[int], None] | None = None
) -> SyncSummary:
    """Import the new and changed files of `folder`; remember them in `state_path`."""
    result = SyncSummary(str(state_path))
    importer = Importer(options, progress)
    with locked(state_path):
        state = load_state(state_path, folder, options.org_id)
        todo, result.unchanged = changed_files(folder, state["files"])
        result.seen = result.unchanged + len(todo)
        for name, path, remember in todo:
            errors_before = len(importer.summary.errors)
            await importer.run(Source.file(path))
            if len(importer.summary.errors) > errors_before:
                result.failed.append(name)
                continue
            result.imported.append(name)
            if not options.dry_run:
                state["files"][name] = {**remember, "imported_at": iso_ms(utcnow())}
                save_state(state_path, state)
        if not options.dry_run:
            save_state(state_path, state)
    result.summary = importer.summary
    return result
