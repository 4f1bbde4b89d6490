"""The ingest event schemas, validation and idempotency hash, and the batch context."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pymongo import UpdateOne

from chatadmin.clock import utcnow
from chatadmin.models import (
    AuditLog,
    User,
)
from chatadmin.models.analysis import AnalysisIn
from chatadmin.models.audit import AuditIn
from chatadmin.models.base import ClientId
from chatadmin.models.context import ContextIn
from chatadmin.models.execution import ExecutionIn
from chatadmin.models.message import FeedbackIn, MessageIn
from chatadmin.models.schema import ApiIn
from chatadmin.models.thread import ThreadIn
from chatadmin.models.user import UserIn
from chatadmin.services import analytics

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

    # Messages are audited once per batch (ids in the entry), not one entry per message.
    messages_written: dict[str, list[str]] = field(default_factory=dict)

    def audit_messages(self) -> None:
        """One audit entry per outcome for the batch's messages, naming their ids."""
        for status, ids in self.messages_written.items():
            self.audit.append(
                AuditLog(
                    org_id=self.org_id,
                    actor_type="api_key",
                    actor_id=self.actor_id,
                    action=f"messages_{status}",
                    resource_type="message",
                    after={"count": len(ids)},
                    ip_address=self.ip_address,
                    user_agent=self.user_agent,
                    created_at=utcnow(),
                    metadata={"via": "ingest", "message_ids": ids},
                ).stamped()
            )

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


def event_hash(kind: str, data: BaseModel) -> str:
    payload = json.dumps(
        [kind, data.model_dump(mode="json", exclude_unset=True)],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def validate_event(raw: EventIn, index: int) -> Event:
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
    event.hash = event_hash(raw.type, event.data)
    return event
