"""`connections`: real-time session records (who is connected, from where), expiring by TTL."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from chatadmin.models.base import (
    ClientId,
    StorageSettings,
    TenantDocument,
    UtcDatetime,
    index,
    ms_property,
    new_id,
)


class Connection(TenantDocument):
    """One client connection of a user."""

    connection_id: ClientId = Field(default_factory=new_id)
    user_id: ClientId
    socket_id: str | None = None
    status: Literal["active", "idle", "disconnected", "expired"] = "active"
    presence_status: Literal["online", "away", "busy", "offline"] = "online"
    active_thread_ids: list[str] = Field(default_factory=list)
    device_type: str | None = None
    browser: str | None = None
    platform: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    connected_at: UtcDatetime
    disconnected_at_ms: int = 0
    disconnected_at = ms_property("disconnected_at_ms")
    last_activity_ms: int = 0
    total_duration_s: int | None = None
    expires_at: UtcDatetime
    expires_at_ms: int

    RESOURCE: ClassVar[str] = "connection"
    RESOURCE_KEY: ClassVar[str] = "connection_id"

    class Settings(StorageSettings):
        name = "connections"
        indexes = [
            index("org_id", "connection_id", unique=True, name="org_connection_uq"),
            index("org_id", "user_id", "status", name="org_user_status"),
            index("org_id", "status", "-last_activity_ms", name="org_status_activity"),
            index("expires_at", ttl=0, name="expires_at_ttl"),
            index("expires_at_ms", name="expires_at_ms"),
        ]
