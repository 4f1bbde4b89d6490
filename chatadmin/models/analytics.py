"""`chat_analytics`: per-day rollups per org and per user, kept by `$inc` at write time.

Dashboards read a few of these small documents instead of scanning messages, so they cost the
same at any scale. Counters are flat top-level fields: the embedded server stores dotted `$inc`
paths of an upsert literally.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel

from chatadmin.models.base import StorageSettings, TenantDocument, UtcDatetime, index

ORG_WIDE = "*"
# What messages add (feedback apart), what feedback adds, what finished executions add.
MESSAGE_COUNTERS = ("messages", "user_messages", "assistant_messages", "threads", "tokens_input",
                    "tokens_output", "tokens_total", "response_ms_sum", "response_count",
                    "errors")  # fmt: skip
FEEDBACK_COUNTERS = ("feedback_count", "helpful_count", "unhelpful_count", "rating_sum",
                     "rating_count", "comment_count")  # fmt: skip
EXECUTION_COUNTERS = ("executions_success", "executions_failed", "execution_ms_sum")
COUNTERS = MESSAGE_COUNTERS + FEEDBACK_COUNTERS + EXECUTION_COUNTERS


class AnalyticsCounters(BaseModel):
    """The counters of a rollup."""

    messages: int = 0
    user_messages: int = 0
    assistant_messages: int = 0
    threads: int = 0
    tokens_input: int = 0
    tokens_output: int = 0
    tokens_total: int = 0
    response_ms_sum: int = 0
    response_count: int = 0
    errors: int = 0
    feedback_count: int = 0
    helpful_count: int = 0
    unhelpful_count: int = 0
    rating_sum: int = 0
    rating_count: int = 0
    comment_count: int = 0
    executions_success: int = 0
    executions_failed: int = 0
    execution_ms_sum: int = 0

    @property
    def average_response_ms(self) -> float | None:
        return self.response_ms_sum / self.response_count if self.response_count else None

    @property
    def average_rating(self) -> float | None:
        return self.rating_sum / self.rating_count if self.rating_count else None


class DailyAnalytics(TenantDocument, AnalyticsCounters):
    """One day of activity for an org (`user_id == "*"`) or for one user."""

    analytics_id: str
    user_id: str = ORG_WIDE
    period_type: Literal["day"] = "day"
    period_key: str
    period_start: UtcDatetime
    period_start_ms: int

    RESOURCE: ClassVar[str] = "analytics"
    RESOURCE_KEY: ClassVar[str] = "analytics_id"

    class Settings(StorageSettings):
        name = "chat_analytics"
        indexes = [
            index("org_id", "analytics_id", unique=True, name="org_analytics_uq"),
            index("org_id", "user_id", "-period_start_ms", name="org_user_period"),
        ]


class AnalyticsSummary(AnalyticsCounters):
    """Counters summed over a range of days (computed, not stored)."""

    org_id: str
    user_id: str = ORG_WIDE
    period_type: Literal["day", "week", "month", "range"] = "range"
    start: datetime
    end: datetime
    days: int = 0
