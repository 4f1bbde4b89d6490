"""Ingest handlers for users, threads, analyses, executions, contexts and audit events."""

from __future__ import annotations

from pymongo import InsertOne

from chatadmin.models import (
    Analysis,
    AuditLog,
    ChatContext,
    Execution,
    Thread,
    User,
)
from chatadmin.models.analysis import AnalysisIn
from chatadmin.models.thread import ThreadIn
from chatadmin.realtime import events as events_hub
from chatadmin.services import threads as threads_service
from chatadmin.services import users as users_service
from chatadmin.services.contexts import ContextWrite, merge_contexts
from chatadmin.services.executions import StatusChange, change_executions, create_executions
from chatadmin.services.ingest.batch import Batch
from chatadmin.services.ingest.events import Event
from chatadmin.services.ingest.writes import (
    bulk,
    existing_docs,
    fields_of,
    given,
    plan,
    stored,
    write_simple,
)
from chatadmin.services.threads import create_threads, new_thread

THREAD_FIELDS = (threads_service.EDITABLE & set(ThreadIn.model_fields)) | {"status"}
ANALYSIS_FIELDS = set(AnalysisIn.model_fields) - {"analysis_id"}


async def users(batch: Batch, events: list[Event]) -> None:
    def build(ev: Event) -> User:
        return users_service.new_user(batch.org_id, ev.id, **fields_of(ev, "user_id"))

    def names(ev: Event) -> set[str]:
        return users_service.written(ev.data.model_fields_set)

    await write_simple(batch, events, User, build, names, "user_id")


async def threads(batch: Batch, events: list[Event]) -> None:
    existing = await existing_docs(Thread, batch.org_id, "thread_id", [e.id for e in events])
    creates, updates = plan(events, existing)
    made = [
        new_thread(batch.org_id, thread_id=ev.id, **fields_of(ev, "thread_id")) for ev in creates
    ]
    for thread, ev in zip(made, creates, strict=True):
        thread.ingest_hash = ev.hash
    stored = {t.thread_id for t in await create_threads(batch.org_id, made, effects=batch.effects)}
    for ev in creates:
        if ev.id in stored:
            ev.done("created")
            batch.audited(ev, "thread_created")
        else:  # made meanwhile by a concurrent batch: it is an update now
            updates.append(ev)
    await write_simple(batch, updates, Thread, _thread_of(batch), _thread_names, "thread_id")
    await events_hub.touched(
        batch.org_id, {ev.id for ev in updates if ev.result.status == "updated"}
    )


def _thread_of(batch: Batch):
    def build(ev: Event) -> Thread:
        thread = new_thread(batch.org_id, thread_id=ev.id, **fields_of(ev, "thread_id"))
        if "status" in ev.data.model_fields_set:
            for name, value in threads_service.status_fields(thread.status).items():
                setattr(thread, name, value)
        return thread

    return build


def _thread_names(ev: Event) -> set[str]:
    names = ev.data.model_fields_set & THREAD_FIELDS
    if "status" in names:
        names |= set(threads_service.status_fields(ev.data.status))
    return names


async def analyses(batch: Batch, events: list[Event]) -> None:
    def build(ev: Event) -> Analysis:
        return Analysis(org_id=batch.org_id, analysis_id=ev.id, **fields_of(ev, "analysis_id"))

    await write_simple(batch, events, Analysis, build, given(ANALYSIS_FIELDS), "analysis_id")
    written = [ev for ev in events if ev.result and ev.result.status != "error"]
    await events_hub.touched(
        batch.org_id, {ev.data.thread_id for ev in written if ev.data.thread_id}
    )


async def contexts(batch: Batch, events: list[Event]) -> None:
    existing = await existing_docs(ChatContext, batch.org_id, "context_id", [e.id for e in events])
    creates, updates = plan(events, existing)
    todo = creates + updates
    writes = [
        ContextWrite(
            ev.id, ev.data.model_dump(include=ev.data.model_fields_set - {"context_id"}), ev.hash
        )
        for ev in todo
    ]
    await merge_contexts(batch.org_id, writes, ttl_days=batch.context_ttl_days)
    for ev, w in zip(todo, writes, strict=True):
        if w.status == "conflict":
            ev.fail("conflict", f"context {ev.id!r} was written concurrently; retry")
        else:
            ev.done(w.status)
            batch.audited(ev, f"context_{w.status}")


async def audit_events(batch: Batch, events: list[Event]) -> None:
    existing = await existing_docs(AuditLog, batch.org_id, "audit_id", [e.id for e in events])
    creates, updates = plan(events, existing)
    for ev in updates:
        ev.fail("conflict", f"audit entry {ev.id!r} exists with other data (append-only)")
    ops = [
        InsertOne(
            stored(
                AuditLog(
                    org_id=batch.org_id,
                    audit_id=ev.id,
                    ingest_hash=ev.hash,
                    **fields_of(ev, "audit_id"),
                    source="ingest",
                    source_key_id=batch.actor.id if batch.actor.type == "api_key" else None,
                ).stamped()
            )
        )
        for ev in creates
    ]
    await bulk(AuditLog, ops, creates)
    for ev in creates:
        if ev.result is None:
            ev.done("created")


async def executions(batch: Batch, events: list[Event]) -> None:
    existing = await existing_docs(Execution, batch.org_id, "execution_id", [e.id for e in events])
    creates, updates = plan(events, existing)
    runs = [
        Execution(
            org_id=batch.org_id,
            execution_id=ev.id,
            ingest_hash=ev.hash,
            **fields_of(ev, "execution_id"),
        )
        for ev in creates
    ]
    stored = {
        r.execution_id for r in await create_executions(batch.org_id, runs, effects=batch.effects)
    }
    for ev in creates:
        if ev.id in stored:
            ev.done("created")
            batch.audited(ev, "execution_created", {"status": ev.data.status})
        else:
            ev.fail("conflict", f"execution {ev.id!r} was created concurrently; retry")
    changes = [
        StatusChange(
            ev.id,
            ev.data.status,
            ev.data.model_dump(include=ev.data.model_fields_set - {"execution_id", "status"}),
            ev.hash,
        )
        for ev in updates
    ]
    await change_executions(batch.org_id, changes, effects=batch.effects)
    for ev, ch in zip(updates, changes, strict=True):
        if ch.outcome == "updated":
            ev.done("updated")
            batch.audited(ev, "execution_updated", {"status": ch.status})
        else:
            ev.fail(ch.outcome, ch.message)
