"""`retention_runs` and `chat_analytics_months`: the lifecycle's own records.

A retention run is one document holding the policy it applied, the reference time its cutoffs
came from, and one unit per (org, collection, action) with its state (planned -> archived ->
verified -> deleting -> deleted -> done), so a run that stopped half-way resumes where it was
without losing or duplicating anything (`services/retention.py`, docs/lifecycle.md).

Month buckets are what the folding of year-old day buckets leaves: one document per org (or
user), month and run that folded days of that month, so a second fold of the same month (late
writes to old days) adds a document instead of overwriting the first. They live in their own
collection so that every reader of `chat_analytics` keeps seeing day buckets only.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from chatadmin.models.analytics import ORG_WIDE, AnalyticsCounters
from chatadmin.models.base import (
    Embedded,
    StorageSettings,
    TenantDocument,
    TimestampedDocument,
    UtcDatetime,
    index,
)

UnitState = Literal["planned", "archived", "verified", "deleting", "deleted", "done"]
RunStatus = Literal["running", "failed", "completed"]


class RetentionUnit(Embedded):
    """What one run does to one collection of one org, and how far it got."""

    org_id: str
    collection: str
    action: Literal["archive_status", "purge", "fold"]
    group: str  # units archived and verified together before any of them deletes
    cutoff_ms: int
    state: UnitState = "planned"
    planned: int = 0  # selected when the run was planned
    archived: int = 0  # lines in the archive file
    deleted: int = 0  # archived documents no longer stored
    kept: int = 0  # archived documents still stored (changed since, so not expired any more)
    file: str | None = None  # relative to the run's archive directory
    sha256: str | None = None
    bytes: int = 0
    error: str | None = None
    updated_at_ms: int = 0

    @property
    def key(self) -> str:
        return f"{self.org_id}/{self.collection}/{self.action}"


class RetentionRun(TimestampedDocument):
    """One run of `manage.py retention`, resumed by the next invocation until completed."""

    run_id: str
    # "active" while running or failed (unique: one unfinished run at a time), then the run id.
    slot: str = "active"
    status: RunStatus = "running"
    now_ms: int  # the reference time every cutoff of the run is computed from
    policy: dict[str, Any] = Field(default_factory=dict)
    archive_dir: str
    units: list[RetentionUnit] = Field(default_factory=list)
    lease_owner: str | None = None
    lease_until_ms: int = 0
    started_at_ms: int = 0
    finished_at_ms: int = 0
    resumed: int = 0  # how many times a later invocation picked it up again
    archive_removed_at_ms: int = 0  # its archive files were removed after the keep period
    error: str | None = None

    RESOURCE: ClassVar[str] = "retention_run"
    RESOURCE_KEY: ClassVar[str] = "run_id"

    class Settings(StorageSettings):
        name = "retention_runs"
        indexes = [
            index("run_id", unique=True, name="run_uq"),
            index("slot", unique=True, name="slot_uq"),
            index("-started_at_ms", name="started"),
        ]


class MonthlyAnalytics(TenantDocument, AnalyticsCounters):
    """The folded day buckets of one month for an org (`user_id == "*"`) or one user."""

    analytics_id: str  # month:YYYY-MM:<user>:<run_id>
    user_id: str = ORG_WIDE
    period_type: Literal["month"] = "month"
    period_key: str  # YYYY-MM
    period_start: UtcDatetime
    period_start_ms: int
    run_id: str
    days: int = 0  # day buckets folded into it

    RESOURCE: ClassVar[str] = "analytics"
    RESOURCE_KEY: ClassVar[str] = "analytics_id"

    class Settings(StorageSettings):
        name = "chat_analytics_months"
        indexes = [
            index("org_id", "analytics_id", unique=True, name="org_month_uq"),
            index("org_id", "user_id", "-period_start_ms", name="org_user_period"),
            index("org_id", "run_id", name="org_run"),
        ]
