"""AI memory (`chat_contexts`): create a context or merge fields into it; every write pushes
its expiry `CHATADMIN_CONTEXT_TTL_DAYS` (90 by default) ahead.

A context is written whole (its expiry is a date, and update operators never carry dates:
nx-27017 stores them as strings), but only the fields a write names change: the others are
taken from the stored document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from pymongo import InsertOne, ReplaceOne
from pymongo.errors import BulkWriteError

from chatadmin.clock import from_ms, now_ms, to_ms, utcnow
from chatadmin.exceptions import Conflict, NotFound
from chatadmin.models import ChatContext

DEFAULT_TTL_DAYS = 90
FIELDS = {"thread_id", "scope_type", "scope_ref", "key_points", "decisions", "follow_ups",
          "previous_queries", "context_window", "references", "subject", "token_count"}  # fmt: skip


@dataclass
class ContextWrite:
    """The fields one write gives a context, and what became of it."""

    context_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    ingest_hash: str | None = None
    status: Literal["created", "updated", "conflict"] = "created"
    context: ChatContext | None = None


async def merge_contexts(
    org_id: str, writes: list[ContextWrite], *, ttl_days: int = DEFAULT_TTL_DAYS
) -> list[ContextWrite]:
    """Create or merge each context in one bulk write; unknown fields raise ValueError."""
    for w in writes:
        unknown = set(w.fields) - FIELDS
        if unknown:
            raise ValueError(f"unknown context fields: {sorted(unknown)}")
    ids = sorted({w.context_id for w in writes})
    cursor = ChatContext.find(ChatContext.keyed(org_id, ids))
    stored = {c.context_id: c for c in await cursor.to_list()}
    now = now_ms()
    expires = from_ms(now) + timedelta(days=ttl_days)
    ops = []
    for w in writes:
        current = stored.get(w.context_id)
        base = current.model_dump(by_alias=True, include=FIELDS) if current else {}
        doc = ChatContext.model_validate(
            {
                **base,
                **w.fields,
                "org_id": org_id,
                "context_id": w.context_id,
                "expires_at": expires,
                "expires_at_ms": to_ms(expires),
            }
        )
        doc.ingest_hash = w.ingest_hash
        if current is not None:
            doc.id, doc.created_at = current.id, current.created_at
        doc.stamped().updated_at_ms = now
        if current is not None:
            ops.append(ReplaceOne({"_id": current.id}, doc.storage_fields()))
            w.status = "updated"
        else:
            ops.append(InsertOne(doc.storage_fields()))
        w.context = doc
    if ops:
        try:
            await ChatContext.get_pymongo_collection().bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            for err in exc.details.get("writeErrors", []):
                if err.get("code") != 11000:
                    raise
                writes[err["index"]].status = "conflict"  # created meanwhile by another write
    return writes


async def upsert_context(
    org_id: str, context_id: str, *, ttl_days: int = DEFAULT_TTL_DAYS, **fields: Any
) -> ChatContext:
    """Create a context or merge the given fields into it."""
    for _attempt in range(2):
        (w,) = await merge_contexts(
            org_id, [ContextWrite(str(context_id), fields)], ttl_days=ttl_days
        )
        if w.status != "conflict":
            return w.context
    raise Conflict(f"context {context_id!r} is being written concurrently; retry")


async def get_context(org_id: str, context_id: str) -> ChatContext:
    found = await ChatContext.find_one({"org_id": org_id, "context_id": str(context_id)})
    if found is None or found.expires_at_ms <= to_ms(utcnow()):
        raise NotFound(f"context {context_id!r} not found")
    return found
