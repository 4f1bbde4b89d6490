"""The ingest event schemas (one per event type), an event being applied, its validation and
its idempotency hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from chatadmin.models.analysis import AnalysisIn
from chatadmin.models.audit import AuditIn
from chatadmin.models.base import ClientId
from chatadmin.models.context import ContextIn
from chatadmin.models.execution import ExecutionIn
from chatadmin.models.message import FeedbackIn, MessageIn
from chatadmin.models.schema import ApiIn
from chatadmin.models.thread import ThreadIn
from chatadmin.models.user import UserIn

EVENT_TYPES = ("user", "thread", "analysis", "execution", "message", "feedback", "context", "audit")
Status = Literal["created", "updated", "unchanged", "accepted", "error"]


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

    # Any name: an event of a type this server does not know (a newer client's) gets its own
    # `unknown_type` error and never sinks the batch's other events.
    type: str = Field(min_length=1, max_length=64)
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
    # True: MongoDB was unreachable; the event is in the durable spool (status "accepted")
    # and will be applied, in order, when it returns.
    spooled: bool = False


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
    if raw.type not in SCHEMAS:
        known = ", ".join(EVENT_TYPES)
        event.fail("unknown_type", f"this server does not know {raw.type!r} events ({known})")
        return event
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
