"""`chat_contexts`: AI memory per conversation or scope, expiring after 90 days by default."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from chatadmin.models.base import (
    ClientId,
    JsonObject,
    StorageSettings,
    TenantDocument,
    UtcDatetime,
    index,
    new_id,
)
from chatadmin.models.jsonfield import ClientJsonObject
from chatadmin.models.schema import ApiIn

ScopeType = Literal["conversation", "user", "employee", "team", "department"]


class ChatContext(TenantDocument):
    """What the AI should remember about a conversation or a subject."""

    context_id: ClientId = Field(default_factory=new_id)
    thread_id: ClientId | None = None
    scope_type: ScopeType = "conversation"
    scope_ref: str | None = None
    key_points: list[str] = Field(default_factory=list)
    decisions: list[str] = Field(default_factory=list)
    follow_ups: list[str] = Field(default_factory=list)
    previous_queries: list[str] = Field(default_factory=list)
    context_window: str | None = None
    references: list[JsonObject] = Field(default_factory=list)
    subject: JsonObject = Field(default_factory=dict)
    token_count: int = 0
    expires_at: UtcDatetime
    expires_at_ms: int

    RESOURCE: ClassVar[str] = "context"
    RESOURCE_KEY: ClassVar[str] = "context_id"

    class Settings(StorageSettings):
        name = "chat_contexts"
        indexes = [
            index("org_id", "context_id", unique=True, name="org_context_uq"),
            index("org_id", "thread_id", name="org_thread"),
            index("org_id", "scope_type", "scope_ref", name="org_scope"),
            index("expires_at", ttl=0, name="expires_at_ttl"),
            index("expires_at_ms", name="expires_at_ms"),
        ]


class ContextIn(ApiIn):
    """A context pushed by a backend (ingest `context`)."""

    thread_id: ClientId | None = None
    scope_type: ScopeType = "conversation"
    scope_ref: str | None = Field(default=None, max_length=256)
    key_points: list[str] = Field(default_factory=list, max_length=200)
    decisions: list[str] = Field(default_factory=list, max_length=200)
    follow_ups: list[str] = Field(default_factory=list, max_length=200)
    previous_queries: list[str] = Field(default_factory=list, max_length=200)
    context_window: str | None = Field(default=None, max_length=200_000)
    references: list[ClientJsonObject] = Field(default_factory=list, max_length=200)
    subject: ClientJsonObject = Field(default_factory=dict)
    token_count: int = Field(default=0, ge=0)
