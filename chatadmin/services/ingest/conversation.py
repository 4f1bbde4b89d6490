"""Ingest handlers for messages (seqs reserved per thread, threads made on demand), feedback."""

from __future__ import annotations

import asyncio

from pydantic import ValidationError
from pymongo import InsertOne, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError

from chatadmin.clock import now_ms, to_ms
from chatadmin.models import (
    Message,
    Thread,
)
from chatadmin.models.message import AiMetadata, Feedback
from chatadmin.services.ingest.events import Context, Event
from chatadmin.services.ingest.writes import (
    bulk,
    existing_docs,
    fields_of,
    plan,
    set_update,
    stored,
)
from chatadmin.services.messages import (
    analytics_counters,
    build_message,
    document_size,
    feedback_delta,
)


async def messages(ctx: Context, events: list[Event]) -> None:
    existing = await existing_docs(
        Message, ctx.org_id, "message_id", [e.id for e in events], ("thread_id",)
    )
    creates, updates = plan(events, existing)
    built: dict[int, Message] = {}
    for ev in creates + updates:
        fields = fields_of(ev, "message_id", "thread_id")
        fields["content"] = ev.data.content
        try:
            msg = build_message(ctx.org_id, ev.data.thread_id, message_id=ev.id, **fields)
        except ValidationError as exc:
            ev.fail("invalid", f"invalid message: {exc.errors()[0]['msg']}")
            continue
        size = document_size(msg)
        if size > ctx.max_message_bytes:
            ev.fail("too_large", f"message is {size} bytes; the limit is {ctx.max_message_bytes}")
            continue
        prior = existing.get(ev.id)
        if prior is not None and prior["thread_id"] != msg.thread_id:
            ev.fail("conflict", "a message cannot move to another thread")
            continue
        built[ev.index] = msg
    creates = [ev for ev in creates if ev.index in built]
    await ensure_threads(ctx, [built[ev.index] for ev in creates], creates)
    creates = [ev for ev in creates if ev.result is None]

    by_thread: dict[str, list[Event]] = {}
    for ev in creates:
        by_thread.setdefault(built[ev.index].thread_id, []).append(ev)
    await asyncio.gather(
        *(reserve(ctx, tid, [built[e.index] for e in evs], evs) for tid, evs in by_thread.items())
    )
    creates = [ev for ev in creates if ev.result is None]

    ops, order = [], []
    for ev in creates:
        msg = built[ev.index]
        msg.ingest_hash = ev.hash
        ops.append(InsertOne(stored(msg.stamped())))
        order.append(ev)
    mutable = {
        "content",
        "text",
        "question_context",
        "query_type",
        "analysis_id",
        "analysis",
        "ai_metadata",
        "execution_id",
        "execution_status",
        "status",
        "error",
        "has_error",
        "references",
        "metadata",
    }
    for ev in updates:
        if ev.index in built:
            msg = built[ev.index]
            ops.append(
                UpdateOne({"org_id": ctx.org_id, "message_id": ev.id}, set_update(msg, mutable, ev))
            )
            order.append(ev)
    await bulk(Message, ops, order)
    for ev in order:
        if ev.result is not None:
            continue
        msg = built[ev.index]
        if ev in creates:
            ev.done("created")
            ctx.rollups.add(msg.user_id, msg.created_at, **analytics_counters(msg))
            ctx.bump_user(msg.user_id, msg.created_at_ms, message_count=1)
        else:
            ev.done("updated")
        ctx.messages_written.setdefault(ev.result.status, []).append(ev.id)


async def ensure_threads(ctx: Context, msgs: list[Message], events: list[Event]) -> None:
    """Create the threads that messages name but that do not exist yet (one bulk write)."""
    wanted = sorted({m.thread_id for m in msgs})
    if not wanted:
        return
    found = await existing_docs(Thread, ctx.org_id, "thread_id", wanted, ("status",))
    missing: dict[str, Thread] = {}
    for msg, ev in zip(msgs, events, strict=True):
        prior = found.get(msg.thread_id)
        if prior is not None:
            if prior["status"] == "deleted":
                ev.fail("not_found", f"thread {msg.thread_id!r} is deleted")
            continue
        if msg.thread_id in missing:
            continue
        if not msg.user_id:
            ev.fail(
                "invalid",
                f"thread {msg.thread_id!r} does not exist and the message has no "
                "user_id to create it with",
            )
            continue
        title = (msg.text.strip().splitlines() or ["Untitled conversation"])[0][:80]
        thread = Thread(
            org_id=ctx.org_id,
            thread_id=msg.thread_id,
            user_id=msg.user_id,
            title=title or "Untitled conversation",
            initial_source="ingest",
            created_at=msg.created_at,
        )
        thread.last_activity_ms = to_ms(thread.created_at)
        missing[msg.thread_id] = thread
    if not missing:
        return
    # Plain inserts: on nx-27017 an upsert by a field other than `_id` scans the collection.
    created = list(missing.values())
    try:
        await Thread.get_pymongo_collection().insert_many(
            [stored(t.stamped()) for t in created], ordered=False
        )
    except BulkWriteError as exc:  # made meanwhile by a concurrent batch: it counts them
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        lost = {e["index"] for e in errors}
        created = [t for i, t in enumerate(created) if i not in lost]
    for t in created:
        ctx.rollups.add(t.user_id, t.created_at, threads=1)
        ctx.bump_user(t.user_id, 0, thread_count=1)


async def reserve(ctx: Context, thread_id: str, msgs: list[Message], events: list[Event]) -> None:
    """Reserve consecutive seqs for a thread's new messages and update its rollups, atomically."""
    metas = [m.ai_metadata or AiMetadata() for m in msgs]
    incs = {
        "next_seq": len(msgs),
        "message_count": len(msgs),
        "total_tokens": sum(m.tokens() for m in metas),
        "total_response_ms": sum(m.response_ms or 0 for m in metas),
        "response_count": sum(m.response_ms is not None for m in metas),
        "error_count": sum(m.has_error for m in msgs),
    }
    last = max(to_ms(m.created_at) for m in msgs)
    doc = await Thread.get_pymongo_collection().find_one_and_update(
        {"org_id": ctx.org_id, "thread_id": thread_id, "status": {"$in": ["active", "archived"]}},
        {
            "$inc": {k: v for k, v in incs.items() if v},
            "$max": {"last_message_at_ms": last, "last_activity_ms": last, "updated_at_ms": last},
        },
        projection={"next_seq": 1, "user_id": 1},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        for ev in events:
            ev.fail("not_found", f"thread {thread_id!r} not found")
        return
    first = doc["next_seq"] - len(msgs)
    for offset, msg in enumerate(msgs):
        msg.seq = first + offset
        msg.user_id = msg.user_id or doc.get("user_id")


async def feedback(ctx: Context, events: list[Event]) -> None:
    existing = await existing_docs(
        Message,
        ctx.org_id,
        "message_id",
        [e.id for e in events],
        ("feedback", "user_id", "created_at"),
    )
    ops, order = [], []
    for ev in events:
        prior = existing.get(ev.id)
        if prior is None:
            ev.fail("not_found", f"message {ev.id!r} not found")
            continue
        old = Feedback.model_validate(prior["feedback"]) if prior.get("feedback") else None
        new = Feedback(**ev.data.model_dump(exclude={"message_id"}), submitted_at_ms=now_ms())
        same = old is not None and (old.is_helpful, old.rating, old.comment) == (
            new.is_helpful,
            new.rating,
            new.comment,
        )
        if same:
            ev.done("unchanged")
            continue
        ops.append(
            UpdateOne(
                {"org_id": ctx.org_id, "message_id": ev.id},
                {"$set": {"feedback": new.model_dump(), "updated_at_ms": now_ms()}},
            )
        )
        order.append((ev, old, new, prior))
    await bulk(Message, ops, [o[0] for o in order])
    for ev, old, new, prior in order:
        if ev.result is not None:
            continue
        ev.done("updated" if old else "created")
        delta = feedback_delta(old, new)
        ctx.rollups.add(prior.get("user_id"), prior["created_at"], **delta)
        ctx.audited(ev, f"feedback_{ev.result.status}", new.model_dump(mode="json"))
