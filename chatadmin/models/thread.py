"""`chat_sessions`: one conversation thread, with counters kept in step by every message write."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chatadmin.models.base import (
    STORAGE_ENCODERS,
    ClientId,
    Embedded,
    JsonObject,
    TenantDocument,
    index,
    ms_property,
    new_id,
)

ThreadStatus = Literal["active", "archived", "deleted"]
THREAD_STATUSES = ("active", "archived", "deleted")


class AccessScope(Embedded):
    """Who may see a thread besides its owner."""

    allowed_roles: list[str] = Field(default_factory=list)
    allowed_user_ids: list[str] = Field(default_factory=list)
    is_private: bool = False


class Thread(TenantDocument):
    """A conversation: metadata and rollups only; messages live in `chat_messages`."""

    thread_id: ClientId = Field(default_factory=new_id)
    user_id: ClientId
    title: str = Field(default="Untitled conversation", max_length=500)
    description: str | None = Field(default=None, max_length=5000)
    type: str | None = Field(default=None, max_length=100)
    status: ThreadStatus = "active"
    is_pinned: bool = False
    is_favorited: bool = False
    tags: list[str] = Field(default_factory=list)
    initial_source: str | None = Field(default=None, max_length=100)

    message_count: int = 0
    next_seq: int = 0
    last_message_at_ms: int = 0
    last_message_at = ms_property("last_message_at_ms")
    # Newest activity first: max(created, last message), the list sort key.
    last_activity_ms: int = 0

    context_summary: JsonObject = Field(default_factory=dict)
    key_insights: list[str] = Field(default_factory=list)
    analysis_ids: list[str] = Field(default_factory=list)
    access_scope: AccessScope = Field(default_factory=AccessScope)

    total_tokens: int = 0
    total_response_ms: int = 0
    response_count: int = 0
    error_count: int = 0
    notes: list[JsonObject] = Field(default_factory=list)

    archived_at_ms: int = 0
    archived_at = ms_property("archived_at_ms")
    deleted_at_ms: int = 0
    deleted_at = ms_property("deleted_at_ms")
    metadata: JsonObject = Field(default_factory=dict)

    @property
    def average_response_ms(self) -> float | None:
        return self.total_response_ms / self.response_count if self.response_count else None

    class Settings:
        name = "chat_sessions"
        bson_encoders = STORAGE_ENCODERS
        indexes = [
            index("org_id", "thread_id", unique=True, name="org_thread_uq"),
            index(
                "org_id", "user_id", "status", "-last_activity_ms", name="org_user_status_activity"
            ),
            index("org_id", "status", "-last_activity_ms", name="org_status_activity"),
            index("org_id", "tags", name="org_tags"),
            index("org_id", "-created_at_ms", name="org_created"),
        ]


# Heavy fields left out of thread lists.
THREAD_LIST_EXCLUDE = ("context_summary", "key_insights", "analysis_ids", "notes", "access_scope")
