"""`audit_logs`: append-only record of who did what to which object, with before/after."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from chatadmin.models.base import (
    JsonObject,
    StorageSettings,
    TenantDocument,
    index,
    new_id,
)
from chatadmin.models.jsonfield import AuditJson, ClientJsonObject
from chatadmin.models.schema import ApiDatetime, ApiIn, ApiOut, ApiQuery

ActorType = Literal["user", "admin", "api_key", "system"]


class AuditLog(TenantDocument):
    """One audited action (LogEntry-style: actor, action, object, JSON change message)."""

    audit_id: str = Field(default_factory=new_id)
    actor_type: ActorType
    actor_id: str
    action: str = Field(min_length=1, max_length=100)
    resource_type: str = Field(max_length=100)
    resource_id: str | None = Field(default=None, max_length=256)
    before: AuditJson | None = None
    after: AuditJson | None = None
    changes: AuditJson | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    success: bool = True
    error_message: str | None = None
    metadata: JsonObject = Field(default_factory=dict)
    # "chatadmin": written by the product itself (staff, API, system); "ingest": reported by a
    # backend through `/ingest`, its claims kept as data and the reporting key named.
    source: Literal["chatadmin", "ingest"] = "chatadmin"
    source_key_id: str | None = None

    RESOURCE: ClassVar[str] = "audit"
    RESOURCE_KEY: ClassVar[str] = "audit_id"

    class Settings(StorageSettings):
        name = "audit_logs"
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


class AuditIn(ApiIn):
    """An audit event pushed by a backend (ingest `audit`)."""

    actor_type: ActorType = "user"
    actor_id: str = Field(min_length=1, max_length=256)
    action: str = Field(min_length=1, max_length=100)
    resource_type: str = Field(min_length=1, max_length=100)
    resource_id: str | None = Field(default=None, max_length=256)
    before: ClientJsonObject | None = None
    after: ClientJsonObject | None = None
    changes: ClientJsonObject | None = None
    ip_address: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=1000)
    success: bool = True
    error_message: str | None = Field(default=None, max_length=5000)
    metadata: ClientJsonObject = Field(default_factory=dict)


class AuditOut(ApiOut):
    audit_id: str
    actor_type: str
    actor_id: str
    action: str
    resource_type: str
    resource_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changes: dict[str, Any] | None
    ip_address: str | None
    user_agent: str | None
    success: bool
    error_message: str | None
    created_at: ApiDatetime
    metadata: dict[str, Any]
    source: str = "chatadmin"
    source_key_id: str | None = None


class AuditQuery(ApiQuery):
    """`GET /audit` query string."""

    resource_type: str | None = Field(default=None, max_length=100)
    resource_id: str | None = Field(default=None, max_length=256)
    action: str | None = Field(default=None, max_length=100)
    actor_id: str | None = Field(default=None, max_length=256)
    since: datetime | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=1024)
