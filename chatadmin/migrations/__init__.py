"""Versioned migrations: numbered modules `mNNNN_*.py`, each with `NAME` and `async apply(db)`.

`migrate()` applies the pending ones in order and records each in the `migrations` collection
(version, name, applied_at, status, execution_ms, changes); a second run changes nothing.
Processes that start together (`runserver --workers N` with auto-migrate) take turns through a
lock document, so each migration runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import pkgutil
import time
import uuid
from dataclasses import dataclass
from types import ModuleType

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from chatadmin.clock import now_ms, utcnow
from chatadmin.exceptions import ChatAdminError
from chatadmin.models import MigrationRecord


class MigrationError(ChatAdminError):
    """A migration failed; it is recorded as failed and retried by the next run."""

    code = "migration_failed"


@dataclass
class MigrationState:
    version: str
    name: str
    status: str  # pending | completed | failed
    applied_at: str | None = None
    execution_ms: int | None = None


def available() -> list[tuple[str, ModuleType]]:
    """Every migration module, ordered by version."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("m") and info.name[1:5].isdigit():
            found.append((info.name[1:5], importlib.import_module(f"{__name__}.{info.name}")))
    return sorted(found, key=lambda pair: pair[0])


async def states() -> list[MigrationState]:
    """Every known migration with its recorded status."""
    records = {r.version: r for r in await MigrationRecord.find_all().to_list()}
    out = []
    for version, module in available():
        rec = records.get(version)
        out.append(
            MigrationState(
                version=version,
                name=module.NAME,
                status=rec.status if rec else "pending",
                applied_at=rec.applied_at.isoformat() if rec else None,
                execution_ms=rec.execution_ms if rec else None,
            )
        )
    return out


LOCK_COLLECTION = "migrations_lock"
LOCK_STALE_MS = 10 * 60 * 1000  # a holder silent this long died: its lock is taken over
LOCK_POLL_S = 0.2


@contextlib.asynccontextmanager
async def _locked(db: AsyncDatabase):
    """Hold the migration lock (one document with a fixed `_id`) while the body runs."""
    locks = db[LOCK_COLLECTION]
    holder = uuid.uuid4().hex
    while True:
        try:
            await locks.insert_one({"_id": "migrate", "holder": holder, "at_ms": now_ms()})
            break
        except DuplicateKeyError:
            await locks.delete_one({"_id": "migrate", "at_ms": {"$lt": now_ms() - LOCK_STALE_MS}})
            await asyncio.sleep(LOCK_POLL_S)
    try:
        yield
    finally:
        await locks.delete_one({"_id": "migrate", "holder": holder})


async def migrate(db: AsyncDatabase) -> list[MigrationRecord]:
    """Apply pending (or previously failed) migrations in order; returns the new records."""
    async with _locked(db):
        return await _migrate(db)


async def _migrate(db: AsyncDatabase) -> list[MigrationRecord]:
    done = {r.version for r in await MigrationRecord.find({"status": "completed"}).to_list()}
    applied = []
    for version, module in available():
        if version in done:
            continue
        start = time.perf_counter()
        error = None
        try:
            changes = await module.apply(db)
        except (PyMongoError, ChatAdminError) as exc:
            changes, error = [], f"{type(exc).__name__}: {exc}"
        record = MigrationRecord(
            version=version,
            name=module.NAME,
            applied_at=utcnow(),
            status="failed" if error else "completed",
            execution_ms=int((time.perf_counter() - start) * 1000),
            changes=changes,
            error=error,
        )
        await MigrationRecord.find({"version": version}).delete()
        await record.insert()
        applied.append(record)
        if error:
            raise MigrationError(f"migration {version} ({module.NAME}) failed: {error}")
    return applied
