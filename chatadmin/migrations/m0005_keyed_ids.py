"""Tenant documents get the `_id` that their org and client id give them (`acme~t-42`), so that
batch lookups by client id go through the primary index on every server (`models/base.py`).

Documents written before keep a random `_id` until this migration moves them, a batch at a
time, through a side collection, so that a crash at any point loses nothing: each document is
first saved there under its new `_id`, then deleted, then inserted again under the new `_id`
(the unique `(org_id, client id)` index allows only one of the two at a time), and its side
entry removed. A later run first finishes what the side collection still holds. The app does
not serve while migrations run (they run before it starts, or through `manage.py migrate`).
"""

from __future__ import annotations

from pymongo import DeleteOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from chatadmin.exceptions import ChatAdminError
from chatadmin.models import DOCUMENT_MODELS
from chatadmin.models.base import TenantDocument, rekeyed

NAME = "document ids from org and client id"
SIDE = "migration_rekey"
BATCH = 500


class MigrationError(ChatAdminError):
    """A document could not be moved; nothing was lost (it waits in the side collection)."""

    code = "migration_failed"


def keyed_models() -> list[type[TenantDocument]]:
    """The collections whose documents are keyed by org and client id."""
    return [m for m in DOCUMENT_MODELS if issubclass(m, TenantDocument) and m.RESOURCE_KEY != "id"]


async def apply(db: AsyncDatabase) -> list[str]:
    changes = []
    resumed = await _finish(db)
    if resumed:
        changes.append(f"finished {resumed} documents a stopped run had begun to move")
    for model in keyed_models():
        name = model.Settings.name
        moved = 0
        pending: list[tuple[dict, dict]] = []
        async for doc in db[name].find({}):
            new = rekeyed(model, doc)
            if new["_id"] == doc["_id"]:
                continue
            pending.append((doc, new))
            if len(pending) >= BATCH:
                moved += await _move(db, name, pending)
                pending = []
        moved += await _move(db, name, pending)
        if moved:
            changes.append(f"re-keyed {moved} documents of {name}")
    return changes


async def _move(db: AsyncDatabase, name: str, pending: list[tuple[dict, dict]]) -> int:
    """Move one batch to its new `_id`s; returns how many."""
    entries = [
        {"_id": f"{name}|{old['_id']}", "collection": name, "old_id": old["_id"], "doc": new}
        for old, new in pending
    ]
    if not entries:
        return 0
    try:
        await db[SIDE].insert_many(entries, ordered=False)
    except BulkWriteError as exc:  # entries of an earlier try: the same content
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise
    return await _complete(db, entries)


async def _complete(db: AsyncDatabase, entries: list[dict]) -> int:
    """From saved side entries: delete the old documents, insert the new ones, clear the side
    entries; returns how many moved."""
    coll = db[entries[0]["collection"]]
    await coll.bulk_write([DeleteOne({"_id": e["old_id"]}) for e in entries], ordered=False)
    try:
        await coll.insert_many([e["doc"] for e in entries], ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        taken = [entries[e["index"]]["doc"]["_id"] for e in errors]
        there = {d["_id"] for d in await coll.find({"_id": {"$in": taken}}, {"_id": 1}).to_list()}
        lost = [t for t in taken if t not in there]  # held by another document's client id
        if lost:
            raise MigrationError(
                f"{coll.name}: {len(lost)} documents could not take their new _id (e.g. "
                f"{lost[0]!r}); they are kept in the collection {SIDE!r}"
            ) from None
    await db[SIDE].delete_many({"_id": {"$in": [e["_id"] for e in entries]}})
    return len(entries)


async def _finish(db: AsyncDatabase) -> int:
    """Complete the moves a stopped run left in the side collection; returns how many."""
    by_collection: dict[str, list[dict]] = {}
    async for entry in db[SIDE].find({}):
        by_collection.setdefault(entry["collection"], []).append(entry)
    done = 0
    for entries in by_collection.values():
        for i in range(0, len(entries), BATCH):
            done += await _complete(db, entries[i : i + BATCH])
    return done
