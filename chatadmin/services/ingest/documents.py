"""Ingest handlers for users, threads, analyses, executions, contexts and audit events."""

from __future__ import annotations

from datetime import timedelta

from pymongo import InsertOne, ReplaceOne, UpdateOne

from chatadmin.clock import now_ms, to_ms, utcnow
from chatadmin.models import (
    Analysis,
    AuditLog,
    ChatContext,
    Execution,
    Thread,
    User,
)
from chatadmin.models.analysis import AnalysisIn
from chatadmin.models.context import ContextIn
from chatadmin.models.execution import TRANSITIONS
from chatadmin.models.user import email_key
from chatadmin.services.contexts import DEFAULT_TTL_DAYS
from chatadmin.services.ingest.events import Context, Event
from chatadmin.services.ingest.writes import (
    bulk,
    existing_docs,
    fields_of,
    given,
    plan,
    set_update,
    stored,
    write_simple,
)

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


async def users(ctx: Context, events: list[Event]) -> None:
    def build(ev: Event) -> User:
        fields = fields_of(ev, "user_id")
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

    await write_simple(ctx, events, User, build, names, "user_id")


async def threads(ctx: Context, events: list[Event]) -> None:
    def build(ev: Event) -> Thread:
        thread = Thread(org_id=ctx.org_id, thread_id=ev.id, **fields_of(ev, "thread_id"))
        thread.last_activity_ms = to_ms(thread.created_at)
        return thread

    await write_simple(ctx, events, Thread, build, given(THREAD_FIELDS), "thread_id")
    for ev in events:
        if ev.result and ev.result.status == "created":
            ctx.rollups.add(ev.data.user_id, ev.data.created_at or utcnow(), threads=1)
            ctx.bump_user(ev.data.user_id, 0, thread_count=1)


async def analyses(ctx: Context, events: list[Event]) -> None:
    def build(ev: Event) -> Analysis:
        return Analysis(org_id=ctx.org_id, analysis_id=ev.id, **fields_of(ev, "analysis_id"))

    await write_simple(ctx, events, Analysis, build, given(ANALYSIS_FIELDS), "analysis_id")


async def contexts(ctx: Context, events: list[Event]) -> None:
    def build(ev: Event) -> ChatContext:
        expires = utcnow() + timedelta(days=DEFAULT_TTL_DAYS)
        return ChatContext(
            org_id=ctx.org_id,
            context_id=ev.id,
            expires_at=expires,
            expires_at_ms=to_ms(expires),
            **fields_of(ev, "context_id"),
        )

    existing = await existing_docs(
        ChatContext,
        ctx.org_id,
        "context_id",
        [e.id for e in events],
        ("created_at", "created_at_ms"),
    )
    creates, updates = plan(events, existing)
    ops, order = [], []
    for ev in creates + updates:
        doc = build(ev)
        doc.ingest_hash = ev.hash
        prior = existing.get(ev.id)
        if prior is not None:  # written whole: its expiry (a date) changes
            doc.id, doc.created_at = prior["_id"], prior["created_at"]
            ops.append(ReplaceOne({"_id": prior["_id"]}, stored(doc.stamped())))
        else:
            ops.append(InsertOne(stored(doc.stamped())))
        order.append(ev)
    await bulk(ChatContext, ops, order)
    for ev in order:
        if ev.result is None:
            ev.done("created" if ev in creates else "updated")
            ctx.audited(ev, f"context_{ev.result.status}")


async def audit_events(ctx: Context, events: list[Event]) -> None:
    existing = await existing_docs(AuditLog, ctx.org_id, "audit_id", [e.id for e in events])
    creates, updates = plan(events, existing)
    for ev in updates:
        ev.fail("conflict", f"audit entry {ev.id!r} exists with other data (append-only)")
    ops = [
        InsertOne(
            stored(
                AuditLog(
                    org_id=ctx.org_id,
                    audit_id=ev.id,
                    ingest_hash=ev.hash,
                    **fields_of(ev, "audit_id"),
                ).stamped()
            )
        )
        for ev in creates
    ]
    await bulk(AuditLog, ops, creates)
    for ev in creates:
        if ev.result is None:
            ev.done("created")


async def executions(ctx: Context, events: list[Event]) -> None:
    existing = await existing_docs(
        Execution,
        ctx.org_id,
        "execution_id",
        [e.id for e in events],
        ("status", "started_at_ms", "user_id", "created_at"),
    )
    creates, updates = plan(events, existing)
    ops, order = [], []
    now = now_ms()
    for ev in creates:
        run = Execution(org_id=ctx.org_id, execution_id=ev.id, **fields_of(ev, "execution_id"))
        if run.status != "pending":
            run.started_at_ms = now
        if run.status in ("success", "failed"):
            run.completed_at_ms = now
        run.ingest_hash = ev.hash
        ops.append(InsertOne(stored(run.stamped())))
        order.append(ev)
    for ev in updates:
        prior = existing[ev.id]
        target = ev.data.status
        if target != prior["status"] and target not in TRANSITIONS[prior["status"]]:
            ev.fail("invalid_transition", f"execution cannot go from {prior['status']} to {target}")
            continue
        run = Execution(org_id=ctx.org_id, execution_id=ev.id, **fields_of(ev, "execution_id"))
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
                set_update(run, names, ev),
            )
        )
        order.append(ev)
    await bulk(Execution, ops, order)
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
