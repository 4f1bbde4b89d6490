"""`audit_logs`: append-only record of who did what to which object, with before/after."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chatadmin.models.base import (
    STORAGE_ENCODERS,
    JsonObject,
    TenantDocument,
    index,
    new_id,
)

ActorType = Literal["user", "admin", "api_key", "system"]


class AuditLog(TenantDocument):
    """One audited action (LogEntry-style: actor, action, object, JSON change message)."""

    audit_id: str = Field(default_factory=new_id)
    actor_type: ActorType
    actor_id: str
    action: str = Field(min_length=1, max_length=100)
    resource_type: str = Field(max_length=100)
    resource_id: str | None = Field(default=None, max_length=256)
    before: JsonObject | None = None
    after: JsonObject | None = None
    changes: JsonObject | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    success: bool = True
    error_message: str | None = None
    metadata: JsonObject = Field(default_factory=dict)

    class Settings:
        name = "audit_logs"
        bson_encoders = STORAGE_ENCODERS
        indexes = [
            index("org_id", "audit_id", unique=True, name="org_audit_uq"),
            index("org_id", "-created_at_ms", name="org_created"),
            index(
                "org_id",
                "resource_type",
                "resource_id",
                "-created_at_ms",
                name="org_resource_created",
            ),
            index(
                "org_id", "actor_id", "action", "-created_at_ms", name="org_actor_action_created"
            ),
        ]
