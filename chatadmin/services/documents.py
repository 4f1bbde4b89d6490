"""Writes shared by the services: inserts of new documents in bulk, and whole-document writes
for documents whose datetime fields change (expiry times).

Update operators never carry datetimes (nx-27017 stores them as strings), so a document whose
datetime changes is written whole: inserted, or replaced by `_id`, keeping its identity.
"""

from __future__ import annotations

from typing import TypeVar

from pymongo.errors import BulkWriteError, DuplicateKeyError

from chatadmin.models.base import TimestampedDocument

D = TypeVar("D", bound=TimestampedDocument)


async def insert_new(model: type[TimestampedDocument], docs: list[D]) -> list[D]:
    """Insert documents in one unordered write; returns those stored (one whose unique key is
    taken, by an earlier or a concurrent write, is left out)."""
    if not docs:
        return []
    try:
        await model.get_pymongo_collection().insert_many(
            [d.stamped().storage_fields() for d in docs], ordered=False
        )
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        lost = {e["index"] for e in errors}
        return [d for i, d in enumerate(docs) if i not in lost]
    return list(docs)


async def write_whole(doc: D, key: dict, keep: tuple[str, ...] = ()) -> D:
    """Insert `doc`, or replace the document matching the unique `key` (last writer wins).

    The replaced document keeps its `_id`, `created_at` and the fields named in `keep`.
    """
    model = type(doc)
    for _attempt in range(3):
        current = await model.find_one(key)
        if current is None:
            try:
                return await doc.insert()
            except DuplicateKeyError:
                continue  # created meanwhile: replace it instead
        doc.id = current.id
        doc.created_at, doc.created_at_ms = current.created_at, current.created_at_ms
        for name in keep:
            setattr(doc, name, getattr(current, name))
        await doc.replace()
        return doc
    raise RuntimeError(f"could not write {model.__name__} {key}")
