"""Bulk-write helpers shared by the per-type handlers of a batch."""

from __future__ import annotations

from collections.abc import Callable

from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from chatadmin.clock import now_ms
from chatadmin.models.base import TenantDocument
from chatadmin.services.ingest.batch import Batch
from chatadmin.services.ingest.events import Event


async def bulk(model: type[TenantDocument], ops: list, events: list[Event]) -> None:
    """Run `ops` (one per event, same order) unordered; failed ones mark their event."""
    if not ops:
        return
    try:
        await model.get_pymongo_collection().bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        for err in exc.details.get("writeErrors", []):
            ev = events[err["index"]]
            if err.get("code") == 11000:
                ev.fail(
                    "conflict",
                    f"{ev.type} {ev.id!r} conflicts with an existing one "
                    "(a unique value is taken, or it was written concurrently)",
                )
            else:
                ev.fail("write_failed", f"the {ev.type} could not be stored")


async def existing_docs(
    model: type[TenantDocument],
    org_id: str,
    id_field: str,
    ids: list[str],
    extra: tuple[str, ...] = (),
) -> dict[str, dict]:
    if not ids:
        return {}
    projection = {id_field: 1, "ingest_hash": 1, **dict.fromkeys(extra, 1)}
    cursor = model.get_pymongo_collection().find(
        model.keyed(org_id, ids),
        projection,
        batch_size=len(ids),  # one round trip
    )
    return {doc[id_field]: doc async for doc in cursor}


def plan(events: list[Event], existing: dict[str, dict]) -> tuple[list[Event], list[Event]]:
    """Split into creates and updates; replays are `unchanged`; a repeated id applies once."""
    creates, updates, seen = [], [], {}
    for ev in events:
        prior = seen.get(ev.id) or existing.get(ev.id)
        if prior is not None and prior.get("ingest_hash") == ev.hash:
            ev.done("unchanged")
        elif ev.id in seen:
            ev.fail("conflict", f"{ev.type} {ev.id!r} appears twice in the batch with other data")
        elif prior is None:
            creates.append(ev)
        else:
            updates.append(ev)
        seen.setdefault(ev.id, {"ingest_hash": ev.hash})
    return creates, updates


def set_update(doc: TenantDocument, names: set[str], ev: Event) -> dict:
    """`$set` of the named fields (and the search terms, when a searchable field changes)."""
    if set(doc.SEARCH_FIELDS) & names:
        doc.index_search_terms()
        names = {*names, "search_terms"}
    return {
        "$set": {**doc.storage_fields(names), "ingest_hash": ev.hash, "updated_at_ms": now_ms()}
    }


async def write_simple(
    ctx: Batch,
    events: list[Event],
    model: type[TenantDocument],
    build: Callable[[Event], TenantDocument],
    names: Callable[[Event], set[str]],
    id_field: str,
) -> None:
    """Create-or-update for documents without side effects on others."""
    searched = model.SEARCH_FIELDS  # an update of one of them needs the others for the terms
    existing = await existing_docs(model, ctx.org_id, id_field, [e.id for e in events], searched)
    creates, updates = plan(events, existing)
    ops, order = [], []
    for ev in creates:
        doc = build(ev)
        doc.ingest_hash = ev.hash
        ops.append(InsertOne(stored(doc.stamped())))
        order.append(ev)
    for ev in updates:
        doc, changed = build(ev), names(ev)
        for name in set(searched) - changed:
            setattr(doc, name, existing[ev.id].get(name))
        ops.append(UpdateOne({"org_id": ctx.org_id, id_field: ev.id}, set_update(doc, changed, ev)))
        order.append(ev)
    await bulk(model, ops, order)
    for ev in order:
        if ev.result is None:
            ev.done("created" if ev in creates else "updated")
            ctx.audited(ev, f"{ev.type}_{ev.result.status}")


def stored(doc: TenantDocument) -> dict:
    """The storable document (escaped free-form keys), as Beanie would insert it."""
    return doc.storage_fields()


def given(updatable: set[str]) -> Callable[[Event], set[str]]:
    """The updatable fields the event sets."""
    return lambda ev: ev.data.model_fields_set & updatable


def fields_of(ev: Event, *exclude: str) -> dict:
    return ev.data.model_dump(exclude_none=True, exclude=set(exclude))
