"""Idempotent batch ingestion: users, threads, analyses, executions, messages, feedback,
contexts and audit events, written in bulk (one round trip per collection per batch, plus one
seq reservation per thread that receives messages).

Every event carries a client id. An event whose id is new is `created`; a replay with the same
data (same sha256 of its canonical JSON) is `unchanged` and writes nothing; the same id with
other data is `updated`. A bad event gets an `error` result and never sinks the others. Threads
are applied before messages, and a message naming an unknown thread creates it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pymongo import InsertOne, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError

from chatadmin.clock import now_ms, to_ms, utcnow
from chatadmin.models import (
    Analysis,
    AuditLog,
    ChatContext,
    Execution,
    Message,
    Thread,
    User,
)
from chatadmin.models.analysis import AnalysisIn
from chatadmin.models.audit import AuditIn
from chatadmin.models.base import ClientId, TenantDocument
from chatadmin.models.context import ContextIn
from chatadmin.models.execution import TRANSITIONS, ExecutionIn
from chatadmin.models.message import AiMetadata, Feedback, FeedbackIn, MessageIn
from chatadmin.models.schema import ApiIn
from chatadmin.models.thread import ThreadIn
from chatadmin.models.user import UserIn, email_key
from chatadmin.services import analytics
from chatadmin.services.messages import build_message, document_size

EVENT_TYPES = ("user", "thread", "analysis", "execution", "message", "feedback", "context", "audit")
Status = Literal["created", "updated", "unchanged", "error"]


class IngestUser(UserIn):
    user_id: ClientId | None = None


class IngestThread(ThreadIn):
    user_id: ClientId  # required, as for POST /threads


class IngestMessage(MessageIn):
    thread_id: ClientId


class IngestExecution(ExecutionIn):
    status: Literal["pending", "running", "success", "failed"] = "pending"
    result: dict[str, Any] | None = None
    error: str | None = Field(default=None, max_length=20_000)
    execution_ms: int | None = Field(default=None, ge=0)
    warnings: list[str] = Field(default_factory=list, max_length=200)


class IngestFeedback(FeedbackIn):
    message_id: ClientId | None = None


class IngestContext(ContextIn):
    context_id: ClientId | None = None


class IngestAudit(AuditIn):
    audit_id: ClientId | None = None


SCHEMAS: dict[str, type[ApiIn]] = {
    "user": IngestUser,
    "thread": IngestThread,
    "analysis": AnalysisIn,
    "execution": IngestExecution,
    "message": IngestMessage,
    "feedback": IngestFeedback,
    "context": IngestContext,
    "audit": IngestAudit,
}
ID_FIELDS = {
    "user": "user_id",
    "thread": "thread_id",
    "analysis": "analysis_id",
    "execution": "execution_id",
    "message": "message_id",
    "feedback": "message_id",
    "context": "context_id",
    "audit": "audit_id",
}
ADAPTERS = {kind: TypeAdapter(schema) for kind, schema in SCHEMAS.items()}


class EventIn(ApiIn):
    """One event of a batch; `data` is validated against the schema of its `type`."""

    type: Literal[
        "user", "thread", "analysis", "execution", "message", "feedback", "context", "audit"
    ]
    id: ClientId
    data: dict[str, Any] = Field(default_factory=dict)


class BatchIn(ApiIn):
    """`POST /ingest`."""

    events: list[EventIn]


class EventError(BaseModel):
    code: str
    message: str
    details: list = Field(default_factory=list)


class EventResult(BaseModel):
    index: int
    type: str
    id: str
    status: Status
    error: EventError | None = None


class BatchOut(BaseModel):
    results: list[EventResult]


@dataclass
class Event:
    """An event being applied: its validated data and its outcome."""

    index: int
    type: str
    id: str
    data: Any = None
    hash: str = ""
    result: EventResult | None = None

    def done(self, status: Status) -> None:
        self.result = EventResult(index=self.index, type=self.type, id=self.id, status=status)

    def fail(self, code: str, message: str, details: list | None = None) -> None:
        self.result = EventResult(
            index=self.index,
            type=self.type,
            id=self.id,
            status="error",
            error=EventError(code=code, message=message, details=details or []),
        )


@dataclass
class Context:
    """What one batch shares while it is applied."""

    org_id: str
    actor_id: str
    max_message_bytes: int
    ip_address: str | None = None
    user_agent: str | None = None
    rollups: analytics.Batch = field(default_factory=analytics.Batch)
    audit: list[dict] = field(default_factory=list)

    users: dict[str, tuple[dict[str, int], int]] = field(default_factory=dict)

    def bump_user(self, user_id: str | None, active_ms: int, **incs: int) -> None:
        """Count a user's new threads and messages, flushed once per batch."""
        if not user_id:
            return
        counts, last = self.users.get(user_id, ({}, 0))
        for name, amount in incs.items():
            counts[name] = counts.get(name, 0) + amount
        self.users[user_id] = (counts, max(last, active_ms))

    async def flush_users(self) -> None:
        ops = [
            UpdateOne(
                {"org_id": self.org_id, "user_id": uid},
                {"$inc": counts, "$max": {"last_active_at_ms": last}},
            )
            for uid, (counts, last) in self.users.items()
        ]
        if ops:
            await User.get_pymongo_collection().bulk_write(ops, ordered=False)

    def audited(self, event: Event, action: str, after: dict | None = None) -> None:
        now = utcnow()
        self.audit.append(
            AuditLog(
                org_id=self.org_id,
                actor_type="api_key",
                actor_id=self.actor_id,
                action=action,
                resource_type=event.type,
                resource_id=event.id,
                after=after,
                ip_address=self.ip_address,
                user_agent=self.user_agent,
                created_at=now,
                metadata={"via": "ingest", "index": event.index},
            ).stamped()
        )


def _hash(kind: str, data: BaseModel) -> str:
    payload = json.dumps(
        [kind, data.model_dump(mode="json", exclude_unset=True)],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _validate(raw: EventIn, index: int) -> Event:
    event = Event(index=index, type=raw.type, id=raw.id)
    id_field = ID_FIELDS[raw.type]
    given = raw.data.get(id_field)
    if given is not None and given != raw.id:
        event.fail("invalid", f"data.{id_field} differs from the event id")
        return event
    try:
        event.data = ADAPTERS[raw.type].validate_json(json.dumps(raw.data))
    except ValidationError as exc:
        details = [
            {"field": "data." + ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ][:20]
        event.fail("invalid", f"invalid {raw.type} event", details)
        return event
    event.hash = _hash(raw.type, event.data)
    return event


async def _bulk(model: type[TenantDocument], ops: list, events: list[Event]) -> None:
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


async def _existing(
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
        {"org_id": org_id, id_field: {"$in": sorted(set(ids))}}, projection
    )
    return {doc[id_field]: doc async for doc in cursor}


def _plan(events: list[Event], existing: dict[str, dict]) -> tuple[list[Event], list[Event]]:
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


def _set(doc: TenantDocument, names: set[str], ev: Event) -> dict:
    return {
        "$set": {**doc.storage_fields(names), "ingest_hash": ev.hash, "updated_at_ms": now_ms()}
    }


async def _simple(
    ctx: Context,
    events: list[Event],
    model: type[TenantDocument],
    build: Callable[[Event], TenantDocument],
    names: Callable[[Event], set[str]],
    id_field: str,
) -> None:
    """Create-or-update for documents without side effects on others."""
    existing = await _existing(model, ctx.org_id, id_field, [e.id for e in events])
    creates, updates = _plan(events, existing)
    ops, order = [], []
    for ev in creates:
        doc = build(ev)
        doc.ingest_hash = ev.hash
        ops.append(InsertOne(_stored(doc.stamped())))
        order.append(ev)
    for ev in updates:
        doc = build(ev)
        ops.append(UpdateOne({"org_id": ctx.org_id, id_field: ev.id}, _set(doc, names(ev), ev)))
        order.append(ev)
    await _bulk(model, ops, order)
    for ev in order:
        if ev.result is None:
            ev.done("created" if ev in creates else "updated")
            ctx.audited(ev, f"{ev.type}_{ev.result.status}")


def _stored(doc: TenantDocument) -> dict:
    """The storable document (escaped free-form keys), as Beanie would insert it."""
    return doc.storage_fields(set(type(doc).model_fields) | {"_id"})


def _given(updatable: set[str]) -> Callable[[Event], set[str]]:
    """The updatable fields the event sets."""
    return lambda ev: ev.data.model_fields_set & updatable


def _fields(ev: Event, *exclude: str) -> dict:
    return ev.data.model_dump(exclude_none=True, exclude=set(exclude))


# -- per type ------------------------------------------------------------------------------------

USER_FIELDS = {"email", "username", "display_name", "role", "preferences", "metadata"}
THREAD_FIELDS = {
    "title",
    "description",
    "type",
    "status",
    "is_pinned",
    "is_favorited",
    "tags",
    "initial_source",
    "metadata",
}
ANALYSIS_FIELDS = set(AnalysisIn.model_fields) - {"analysis_id"}
CONTEXT_FIELDS = set(ContextIn.model_fields)


async def _users(ctx: Context, events: list[Event]) -> None:
    def build(ev: Event) -> User:
        fields = _fields(ev, "user_id")
        last_login = fields.pop("last_login", None)
        user = User(org_id=ctx.org_id, user_id=ev.id, **fields)
        user.last_login_ms = to_ms(last_login) if last_login else 0
        user.email_key = email_key(user.email, user.user_id)
        return user

    def names(ev: Event) -> set[str]:
        given = ev.data.model_fields_set
        return (
            (given & USER_FIELDS)
            | ({"email_key"} if "email" in given else set())
            | ({"last_login_ms"} if "last_login" in given else set())
        )

    await _simple(ctx, events, User, build, names, "user_id")


async def _threads(ctx: Context, events: list[Event]) -> None:
    def build(ev: Event) -> Thread:
        thread = Thread(org_id=ctx.org_id, thread_id=ev.id, **_fields(ev, "thread_id"))
        thread.last_activity_ms = to_ms(thread.created_at)
        return thread

    await _simple(ctx, events, Thread, build, _given(THREAD_FIELDS), "thread_id")
    for ev in events:
        if ev.result and ev.result.status == "created":
            ctx.rollups.add(ev.data.user_id, ev.data.created_at or utcnow(), threads=1)
            ctx.bump_user(ev.data.user_id, 0, thread_count=1)


async def _analyses(ctx: Context, events: list[Event]) -> None:
    def build(ev: Event) -> Analysis:
        return Analysis(org_id=ctx.org_id, analysis_id=ev.id, **_fields(ev, "analysis_id"))

    await _simple(ctx, events, Analysis, build, _given(ANALYSIS_FIELDS), "analysis_id")


async def _contexts(ctx: Context, events: list[Event]) -> None:
    from datetime import timedelta

    def build(ev: Event) -> ChatContext:
        expires = utcnow() + timedelta(days=90)
        return ChatContext(
            org_id=ctx.org_id,
            context_id=ev.id,
            expires_at=expires,
            expires_at_ms=to_ms(expires),
            **_fields(ev, "context_id"),
        )

    existing = await _existing(
        ChatContext,
        ctx.org_id,
        "context_id",
        [e.id for e in events],
        ("created_at", "created_at_ms"),
    )
    creates, updates = _plan(events, existing)
    ops, order = [], []
    for ev in creates + updates:
        doc = build(ev)
        doc.ingest_hash = ev.hash
        prior = existing.get(ev.id)
        if prior is not None:  # written whole: its expiry (a date) changes
            doc.id, doc.created_at = prior["_id"], prior["created_at"]
            ops.append(ReplaceOne({"_id": prior["_id"]}, _stored(doc.stamped())))
        else:
            ops.append(InsertOne(_stored(doc.stamped())))
        order.append(ev)
    await _bulk(ChatContext, ops, order)
    for ev in order:
        if ev.result is None:
            ev.done("created" if ev in creates else "updated")
            ctx.audited(ev, f"context_{ev.result.status}")


async def _audit_events(ctx: Context, events: list[Event]) -> None:
    existing = await _existing(AuditLog, ctx.org_id, "audit_id", [e.id for e in events])
    creates, updates = _plan(events, existing)
    for ev in updates:
        ev.fail("conflict", f"audit entry {ev.id!r} exists with other data (append-only)")
    ops = [
        InsertOne(
            _stored(
                AuditLog(
                    org_id=ctx.org_id,
                    audit_id=ev.id,
                    ingest_hash=ev.hash,
                    **_fields(ev, "audit_id"),
                ).stamped()
            )
        )
        for ev in creates
    ]
    await _bulk(AuditLog, ops, creates)
    for ev in creates:
        if ev.result is None:
            ev.done("created")


async def _executions(ctx: Context, events: list[Event]) -> None:
    existing = await _existing(
        Execution,
        ctx.org_id,
        "execution_id",
        [e.id for e in events],
        ("status", "started_at_ms", "user_id", "created_at"),
    )
    creates, updates = _plan(events, existing)
    ops, order = [], []
    now = now_ms()
    for ev in creates:
        run = Execution(org_id=ctx.org_id, execution_id=ev.id, **_fields(ev, "execution_id"))
        if run.status != "pending":
            run.started_at_ms = now
        if run.status in ("success", "failed"):
            run.completed_at_ms = now
        run.ingest_hash = ev.hash
        ops.append(InsertOne(_stored(run.stamped())))
        order.append(ev)
    for ev in updates:
        prior = existing[ev.id]
        target = ev.data.status
        if target != prior["status"] and target not in TRANSITIONS[prior["status"]]:
            ev.fail("invalid_transition", f"execution cannot go from {prior['status']} to {target}")
            continue
        run = Execution(org_id=ctx.org_id, execution_id=ev.id, **_fields(ev, "execution_id"))
        names = ev.data.model_fields_set - {"execution_id"}
        if target != prior["status"]:
            if target == "running":
                run.started_at_ms = now
                names.add("started_at_ms")
            else:
                run.completed_at_ms = now
                names.add("completed_at_ms")
                if "execution_ms" not in names and prior.get("started_at_ms"):
                    run.execution_ms = now - prior["started_at_ms"]
                    names.add("execution_ms")
        ops.append(
            UpdateOne(
                {"org_id": ctx.org_id, "execution_id": ev.id, "status": prior["status"]},
                _set(run, names, ev),
            )
        )
        order.append(ev)
    await _bulk(Execution, ops, order)
    for ev in order:
        if ev.result is None:
            ev.done("created" if ev in creates else "updated")
            ctx.audited(ev, f"execution_{ev.result.status}", {"status": ev.data.status})
            if ev.data.status in ("success", "failed"):
                user = ev.data.user_id or existing.get(ev.id, {}).get("user_id")
                ctx.rollups.add(
                    user,
                    utcnow(),
                    executions_success=int(ev.data.status == "success"),
                    executions_failed=int(ev.data.status == "failed"),
                    execution_ms_sum=ev.data.execution_ms or 0,
                )


async def _messages(ctx: Context, events: list[Event]) -> None:
    existing = await _existing(
        Message, ctx.org_id, "message_id", [e.id for e in events], ("thread_id",)
    )
    creates, updates = _plan(events, existing)
    built: dict[int, Message] = {}
    for ev in creates + updates:
        fields = _fields(ev, "message_id", "thread_id")
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
    await _ensure_threads(ctx, [built[ev.index] for ev in creates], creates)
    creates = [ev for ev in creates if ev.result is None]

    by_thread: dict[str, list[Event]] = {}
    for ev in creates:
        by_thread.setdefault(built[ev.index].thread_id, []).append(ev)
    await asyncio.gather(
        *(_reserve(ctx, tid, [built[e.index] for e in evs], evs) for tid, evs in by_thread.items())
    )
    creates = [ev for ev in creates if ev.result is None]

    ops, order = [], []
    for ev in creates:
        msg = built[ev.index]
        msg.ingest_hash = ev.hash
        ops.append(InsertOne(_stored(msg.stamped())))
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
                UpdateOne({"org_id": ctx.org_id, "message_id": ev.id}, _set(msg, mutable, ev))
            )
            order.append(ev)
    await _bulk(Message, ops, order)
    for ev in order:
        if ev.result is not None:
            continue
        msg = built[ev.index]
        if ev in creates:
            ev.done("created")
            meta = msg.ai_metadata or AiMetadata()
            ctx.rollups.add(
                msg.user_id,
                msg.created_at,
                messages=1,
                user_messages=int(msg.role == "user"),
                assistant_messages=int(msg.role == "assistant"),
                tokens_input=meta.input_tokens,
                tokens_output=meta.output_tokens,
                tokens_total=meta.tokens(),
                response_ms_sum=meta.response_ms or 0,
                response_count=int(meta.response_ms is not None),
                errors=int(msg.has_error),
            )
            ctx.bump_user(msg.user_id, msg.created_at_ms, message_count=1)
        else:
            ev.done("updated")
        ctx.audited(
            ev,
            f"message_{ev.result.status}",
            {"thread_id": msg.thread_id, "seq": msg.seq, "role": msg.role},
        )


async def _ensure_threads(ctx: Context, msgs: list[Message], events: list[Event]) -> None:
    """Create the threads that messages name but that do not exist yet (one bulk write)."""
    wanted = sorted({m.thread_id for m in msgs})
    if not wanted:
        return
    found = await _existing(Thread, ctx.org_id, "thread_id", wanted, ("status",))
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
    ops = [
        UpdateOne(
            {"org_id": ctx.org_id, "thread_id": tid},
            {"$setOnInsert": _stored(t.stamped())},
            upsert=True,
        )
        for tid, t in missing.items()
    ]
    await Thread.get_pymongo_collection().bulk_write(ops, ordered=False)
    for t in missing.values():
        ctx.rollups.add(t.user_id, t.created_at, threads=1)
        ctx.bump_user(t.user_id, 0, thread_count=1)


async def _reserve(ctx: Context, thread_id: str, msgs: list[Message], events: list[Event]) -> None:
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


async def _feedback(ctx: Context, events: list[Event]) -> None:
    existing = await _existing(
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
    await _bulk(Message, ops, [o[0] for o in order])
    for ev, old, new, prior in order:
        if ev.result is not None:
            continue
        ev.done("updated" if old else "created")
        delta = {k: _feedback_counts(new)[k] - _feedback_counts(old)[k] for k in _COUNTS}
        ctx.rollups.add(prior.get("user_id"), prior["created_at"], **delta)
        ctx.audited(ev, f"feedback_{ev.result.status}", new.model_dump(mode="json"))


_COUNTS = (
    "feedback_count",
    "helpful_count",
    "unhelpful_count",
    "rating_sum",
    "rating_count",
    "comment_count",
)


def _feedback_counts(fb: Feedback | None) -> dict[str, int]:
    if fb is None:
        return dict.fromkeys(_COUNTS, 0)
    return {
        "feedback_count": 1,
        "helpful_count": int(fb.is_helpful is True),
        "unhelpful_count": int(fb.is_helpful is False),
        "rating_sum": fb.rating or 0,
        "rating_count": int(fb.rating is not None),
        "comment_count": int(bool(fb.comment)),
    }


HANDLERS = {
    "user": _users,
    "thread": _threads,
    "analysis": _analyses,
    "execution": _executions,
    "message": _messages,
    "feedback": _feedback,
    "context": _contexts,
    "audit": _audit_events,
}


async def ingest(ctx: Context, raw_events: list[EventIn]) -> list[EventResult]:
    """Apply a batch; results come back in the order of the events."""
    events = [_validate(raw, i) for i, raw in enumerate(raw_events)]
    for kind in EVENT_TYPES:  # users and threads first, messages before their feedback
        todo = [ev for ev in events if ev.type == kind and ev.result is None]
        if todo:
            await HANDLERS[kind](ctx, todo)
    await analytics.record_batch(ctx.org_id, ctx.rollups)
    await ctx.flush_users()
    if ctx.audit:
        await AuditLog.get_pymongo_collection().insert_many(
            [_stored(a) for a in ctx.audit], ordered=False
        )
    for ev in events:
        if ev.result is None:  # a handler left it untouched: nothing was written for it
            ev.fail("write_failed", f"the {ev.type} could not be stored")
    return [ev.result for ev in events]
