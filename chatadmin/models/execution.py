"""`executions`: the audit trail of script runs, with a strict status machine."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chatadmin.models.base import (
    STORAGE_ENCODERS,
    ClientId,
    JsonObject,
    TenantDocument,
    index,
    ms_property,
    new_id,
)

ExecutionStatus = Literal["pending", "running", "success", "failed"]
# pending -> running -> success | failed; nothing else.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"running"}),
    "running": frozenset({"success", "failed"}),
    "success": frozenset(),
    "failed": frozenset(),
}


class Execution(TenantDocument):
    """One run of a generated script."""

    execution_id: ClientId = Field(default_factory=new_id)
    user_id: ClientId | None = None
    thread_id: ClientId | None = None
    message_id: ClientId | None = None
    analysis_id: ClientId | None = None
    question: str | None = None
    generated_script: str | None = None
    parameters: JsonObject = Field(default_factory=dict)
    status: ExecutionStatus = "pending"
    started_at_ms: int = 0
    started_at = ms_property("started_at_ms")
    completed_at_ms: int = 0
    completed_at = ms_property("completed_at_ms")
    execution_ms: int | None = None
    result: JsonObject | None = None
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    mcp_calls: list[str] = Field(default_factory=list)
    mcp_errors: JsonObject = Field(default_factory=dict)
    memory_used_mb: float | None = None
    cpu_percent: float | None = None
    cache_hit: bool = False
    cache_key: str | None = None
    metadata: JsonObject = Field(default_factory=dict)

    class Settings:
        name = "executions"
        bson_encoders = STORAGE_ENCODERS
        indexes = [
            index("org_id", "execution_id", unique=True, name="org_execution_uq"),
            index("org_id", "user_id", "-created_at_ms", name="org_user_created"),
            index("org_id", "thread_id", name="org_thread"),
            index("org_id", "status", "-created_at_ms", name="org_status_created"),
        ]
