"""Idempotent batch ingestion: users, threads, analyses, executions, messages, feedback,
contexts and audit events, written in bulk (one round trip per collection per batch, plus one
seq reservation per thread that receives messages).

Every event carries a client id. An event whose id is new is `created`; a replay with the same
data (same sha256 of its canonical JSON) is `unchanged` and writes nothing; the same id with
other data is `updated`. A bad event gets an `error` result and never sinks the others. Threads
are applied before messages, and a message naming an unknown thread creates it.
"""

from __future__ import annotations

from chatadmin.services import audit
from chatadmin.services.ingest import conversation, documents
from chatadmin.services.ingest.batch import Batch
from chatadmin.services.ingest.events import (
    EVENT_TYPES,
    BatchIn,
    BatchOut,
    EventIn,
    EventResult,
    validate_event,
)

__all__ = ["Batch", "BatchIn", "BatchOut", "EventIn", "EventResult", "ingest"]

HANDLERS = {
    "user": documents.users,
    "thread": documents.threads,
    "analysis": documents.analyses,
    "execution": documents.executions,
    "message": conversation.messages,
    "feedback": conversation.feedback,
    "context": documents.contexts,
    "audit": documents.audit_events,
}


async def ingest(batch: Batch, raw_events: list[EventIn]) -> list[EventResult]:
    """Apply a batch; results come back in the order of the events."""
    events = [validate_event(raw, i) for i, raw in enumerate(raw_events)]
    for kind in EVENT_TYPES:  # users and threads first, messages before their feedback
        todo = [ev for ev in events if ev.type == kind and ev.result is None]
        if todo:
            await HANDLERS[kind](batch, todo)
    await batch.effects.flush()
    batch.audit_messages()
    await audit.record_many(batch.audit)
    for ev in events:
        if ev.result is None:  # a handler left it untouched: nothing was written for it
            ev.fail("write_failed", f"the {ev.type} could not be stored")
    return [ev.result for ev in events]
