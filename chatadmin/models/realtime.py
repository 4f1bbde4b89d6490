"""API schemas of the real-time state kept in Redis (no Document: nothing of it is stored in
MongoDB, except the `connections` records of live-tail listeners)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chatadmin.models.base import ClientId
from chatadmin.models.schema import ApiIn, ApiOut, ApiQuery

PresenceStatus = Literal["online", "away", "busy"]
ProcessingStatus = Literal["queued", "processing", "completed", "failed"]


class PresenceIn(ApiIn):
    """`PUT /presence/{user_id}`: kept for 5 minutes; send it again to stay present."""

    status: PresenceStatus = "online"
    session_id: ClientId | None = None


class PresenceOut(ApiOut):
    user_id: str
    status: Literal["online", "away", "busy", "offline"]
    session_id: str | None = None
    last_seen_ms: int | None = None


class TypingIn(ApiIn):
    """`POST /threads/{id}/typing`: the user is typing (for 5 seconds)."""

    user_id: ClientId


class TypingOut(ApiOut):
    thread_id: str
    typing: list[str]


class ProcessingIn(ApiIn):
    """`PUT /threads/{id}/messages/{message_id}/processing`: queued -> processing ->
    completed | failed; failed -> queued retries (and counts the retry)."""

    status: ProcessingStatus
    error: str | None = Field(default=None, max_length=2000)


class ProcessingOut(ApiOut):
    message_id: str
    status: Literal["none", "queued", "processing", "completed", "failed"]
    queued_at_ms: int | None = None
    started_at_ms: int | None = None
    completed_at_ms: int | None = None
    updated_at_ms: int | None = None
    retry_count: int = 0
    error: str | None = None


class EventsQuery(ApiQuery):
    """`GET /threads/{id}/events`: who listens (for the participants set), and where to resume
    when the client cannot send `Last-Event-ID`."""

    user_id: ClientId | None = None
    last_event_id: str | None = Field(default=None, max_length=64)
