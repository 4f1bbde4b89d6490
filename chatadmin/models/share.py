"""`shared_threads`: public, bounded snapshots of a thread behind an unguessable id."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from chatadmin.models.analysis import AnalysisSnapshot
from chatadmin.models.base import (
    StorageSettings,
    TenantDocument,
    UtcDatetime,
    index,
    ms_property,
)
from chatadmin.models.blocks import Block
from chatadmin.models.jsonfield import AuditJson
from chatadmin.models.schema import ApiDatetime, ApiIn, ApiOut


class SharedThread(TenantDocument):
    """A snapshot of a thread; `expires_at_ms == 0` means it never expires."""

    share_id: str = Field(min_length=16, max_length=128)
    thread_id: str
    snapshot: AuditJson
    size_bytes: int = 0
    created_by: str | None = None
    expires_at: UtcDatetime | None = None
    expires_at_ms: int = 0
    revoked: bool = False
    revoked_at_ms: int = 0
    revoked_at = ms_property("revoked_at_ms")

    RESOURCE: ClassVar[str] = "share"
    RESOURCE_KEY: ClassVar[str] = "share_id"

    class Settings(StorageSettings):
        name = "shared_threads"
        indexes = [
            index("share_id", unique=True, name="share_uq"),
            index("org_id", "thread_id", name="org_thread"),
            index("expires_at", ttl=0, name="expires_at_ttl"),
            index("expires_at_ms", name="expires_at_ms"),
        ]


class ShareIn(ApiIn):
    """`POST /threads/{id}/share`; no expiry means the share lasts until revoked."""

    expires_in_seconds: int | None = Field(default=None, ge=60, le=366 * 24 * 3600)


class ShareCreated(ApiOut):
    share_id: str
    url: str
    expires_at: ApiDatetime | None


class PublicThread(ApiOut):
    """What a share shows of a thread: no org or user ids."""

    thread_id: str
    title: str
    description: str | None = None
    type: str | None = None
    tags: list[str] = []
    message_count: int = 0
    last_message_at: ApiDatetime | None = None
    created_at: ApiDatetime


class PublicMessage(ApiOut):
    """What a share shows of a message: no org or user ids."""

    message_id: str
    seq: int
    role: str
    content: list[Block]
    text: str
    analysis: AnalysisSnapshot | None = None
    created_at: ApiDatetime


class SharedThreadOut(ApiOut):
    """The public view of a share."""

    share_id: str
    thread: PublicThread
    messages: list[PublicMessage]
    created_at: ApiDatetime
    expires_at: ApiDatetime | None
