"""`executions`: the audit trail of script runs, with a strict status machine."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from chatadmin.models.base import (
    ClientId,
    JsonObject,
    StorageSettings,
    TenantDocument,
    index,
    ms_property,
    new_id,
)
from chatadmin.models.jsonfield import ClientJsonObject
from chatadmin.models.schema import ApiDatetime, ApiIn, ApiOut, ApiQuery

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

    RESOURCE: ClassVar[str] = "execution"
    RESOURCE_KEY: ClassVar[str] = "execution_id"

    class Settings(StorageSettings):
        name = "executions"
        indexes = [
            index("org_id", "execution_id", unique=True, name="org_execution_uq"),
            # The lists of `GET /executions`, newest first: by user, thread or status, or all
            # (migration 0006; its thread index replaces the former `org_thread`).
            index("org_id", "user_id", "-created_at_ms", name="org_user_created"),
            index("org_id", "thread_id", "-created_at_ms", name="org_thread_created"),
            index("org_id", "status", "-created_at_ms", name="org_status_created"),
            index("org_id", "-created_at_ms", name="org_created"),
        ]


class ExecutionIn(ApiIn):
    """`POST /executions` (and ingest): a new run starts as pending."""

    execution_id: ClientId | None = None
    user_id: ClientId | None = None
    thread_id: ClientId | None = None
    message_id: ClientId | None = None
    analysis_id: ClientId | None = None
    question: str | None = Field(default=None, max_length=10_000)
    generated_script: str | None = Field(default=None, max_length=200_000)
    parameters: ClientJsonObject = Field(default_factory=dict)
    mcp_calls: list[str] = Field(default_factory=list, max_length=200)
    metadata: ClientJsonObject = Field(default_factory=dict)


class ExecutionPatch(ApiIn):
    """`PATCH /executions/{id}`: a status change with what is known at that point."""

    status: Literal["running", "success", "failed"]
    result: ClientJsonObject | None = None
    error: str | None = Field(default=None, max_length=20_000)
    warnings: list[str] | None = Field(default=None, max_length=200)
    mcp_calls: list[str] | None = Field(default=None, max_length=200)
    mcp_errors: ClientJsonObject | None = None
    memory_used_mb: float | None = Field(default=None, ge=0)
    cpu_percent: float | None = Field(default=None, ge=0)
    cache_hit: bool | None = None
    cache_key: str | None = Field(default=None, max_length=128)
    execution_ms: int | None = Field(default=None, ge=0)
    metadata: ClientJsonObject | None = None


EXECUTION_PAGE_MAX = 1_000  # executions a list page may hold


class ExecutionListQuery(ApiQuery):
    """`GET /executions` query string: every filter given must match."""

    thread_id: ClientId | None = None
    status: ExecutionStatus | None = None
    user_id: ClientId | None = None
    limit: int = Field(default=20, ge=1, le=EXECUTION_PAGE_MAX)
    cursor: str | None = Field(
        default=None,
        max_length=1024,
        description="`next_cursor` of the previous page (newest first).",
    )


class ExecutionOut(ApiOut):
    execution_id: str
    user_id: str | None
    thread_id: str | None
    message_id: str | None
    analysis_id: str | None
    question: str | None
    generated_script: str | None
    parameters: dict[str, Any]
    status: str
    started_at: ApiDatetime | None
    completed_at: ApiDatetime | None
    execution_ms: int | None
    result: dict[str, Any] | None
    error: str | None
    warnings: list[str]
    mcp_calls: list[str]
    mcp_errors: dict[str, Any]
    memory_used_mb: float | None
    cpu_percent: float | None
    cache_hit: bool
    cache_key: str | None
    created_at: ApiDatetime
    updated_at: ApiDatetime
    metadata: dict[str, Any]
