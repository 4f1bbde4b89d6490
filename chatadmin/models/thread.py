"""`chat_sessions`: one conversation thread, with counters kept in step by every message write."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from chatadmin.models.base import (
    ClientId,
    Embedded,
    JsonObject,
    StorageSettings,
    TenantDocument,
    index,
    ms_property,
    new_id,
)
from chatadmin.models.jsonfield import ClientJsonObject
from chatadmin.models.schema import ApiDatetime, ApiIn, ApiOut, ApiQuery, Tags

ThreadStatus = Literal["active", "archived", "deleted"]
THREAD_STATUSES = ("active", "archived", "deleted")
LIVE_STATUSES = ["active", "archived"]  # a deleted thread answers NotFound until restored
# The same as `{"$in": LIVE_STATUSES}` in a filter by `_id`, where nx-27017 matches it for
# ~0.25 ms less a document (docs/mongo-compat.md): the seq reservations of every batch use it.
LIVE_FILTER = {"$ne": "deleted"}
CLAIMS_KEPT = 1024  # the newest message claims a thread remembers (see services/messages.py)


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
    # Short digests of the ids of the newest messages whose seqs were reserved.
    recent_claims: list[str] = Field(default_factory=list)

    archived_at_ms: int = 0
    archived_at = ms_property("archived_at_ms")
    deleted_at_ms: int = 0
    deleted_at = ms_property("deleted_at_ms")
    metadata: JsonObject = Field(default_factory=dict)

    @property
    def average_response_ms(self) -> float | None:
        return self.total_response_ms / self.response_count if self.response_count else None

    RESOURCE: ClassVar[str] = "thread"
    RESOURCE_KEY: ClassVar[str] = "thread_id"

    class Settings(StorageSettings):
        name = "chat_sessions"
        indexes = [
            index("org_id", "thread_id", unique=True, name="org_thread_uq"),
            index(
                "org_id", "user_id", "status", "-last_activity_ms", name="org_user_status_activity"
            ),
            index("org_id", "status", "-last_activity_ms", name="org_status_activity"),
            index("org_id", "tags", name="org_tags"),
            index("org_id", "-created_at_ms", name="org_created"),
            index("thread_id", name="thread"),  # batch id lookups (see chat_messages)
        ]


# Heavy fields left out of thread lists.
THREAD_LIST_EXCLUDE = (
    "context_summary",
    "key_insights",
    "analysis_ids",
    "notes",
    "access_scope",
    "recent_claims",
)


class ThreadIn(ApiIn):
    """`POST /threads`: a new thread (a client id is kept; otherwise one is made)."""

    thread_id: ClientId | None = None
    user_id: ClientId
    title: str = Field(default="Untitled conversation", min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=5000)
    type: str | None = Field(default=None, max_length=100)
    status: Literal["active", "archived"] = "active"
    is_pinned: bool = False
    is_favorited: bool = False
    tags: Tags = Field(default_factory=list)
    initial_source: str | None = Field(default=None, max_length=100)
    metadata: ClientJsonObject = Field(default_factory=dict)
    created_at: ApiDatetime | None = None


class ThreadName(ApiIn):
    """`POST /threads/{id}/name`."""

    name: str = Field(min_length=1, max_length=500, pattern=r"\S")


class ThreadOut(ApiOut):
    """A thread as the API shows it."""

    thread_id: str
    org_id: str
    user_id: str
    title: str
    description: str | None
    type: str | None
    status: str
    is_pinned: bool
    is_favorited: bool
    tags: list[str]
    initial_source: str | None
    message_count: int
    last_message_at: ApiDatetime | None
    created_at: ApiDatetime
    updated_at: ApiDatetime
    metadata: dict[str, Any]


THREAD_PAGE_MAX = 1_000  # threads a list page may hold
MESSAGE_PAGE_MAX = 500  # messages a thread page may hold
MESSAGE_PAGE_BYTES = 8 * 1024 * 1024  # a page stops once its messages' stored size passes this


class ThreadListQuery(ApiQuery):
    """`GET /threads` query string."""

    user_id: ClientId | None = None
    status: ThreadStatus | None = None
    limit: int = Field(default=20, ge=1, le=THREAD_PAGE_MAX)
    cursor: str | None = Field(default=None, max_length=1024)


class ThreadGetQuery(ApiQuery):
    """`GET /threads/{id}` query string."""

    messages_limit: int = Field(
        default=50,
        ge=0,
        le=MESSAGE_PAGE_MAX,
        description="Messages in the page, in seq order; a page also stops once its messages "
        "pass 8 MiB (their stored size), and `next_cursor` continues from there.",
    )
    cursor: str | None = Field(default=None, max_length=1024)


class ContextQuery(ApiQuery):
    """`GET /threads/{id}/context` query string."""

    messages: int = Field(default=10, ge=0, le=200)
    analyses: int = Field(default=5, ge=0, le=50)
