"""Write-time rollups: every write `$inc`s per-day buckets for its org and its user.

Dashboards then read at most a few dozen small documents, whatever the number of messages.
Week and month views sum the days. `services/rollup.py` rebuilds them from the stored
threads, messages and executions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from chatadmin.clock import day_start, days_between, stamp, to_ms, utcnow
from chatadmin.models import DailyAnalytics
from chatadmin.models.analytics import COUNTERS, FEEDBACK_COUNTERS, ORG_WIDE, AnalyticsSummary
from chatadmin.models.message import AiMetadata, Feedback, Message


def message_counters(message: Message, sign: int = 1) -> dict[str, int]:
    """What one stored message adds to its day's counters (`sign=-1`: what its removal takes)."""
    meta = message.ai_metadata or AiMetadata()
    counts = {
        "messages": 1,
        "user_messages": int(message.role == "user"),
        "assistant_messages": int(message.role == "assistant"),
        "tokens_input": meta.input_tokens,
        "tokens_output": meta.output_tokens,
        "tokens_total": meta.tokens(),
        "response_ms_sum": meta.response_ms or 0,
        "response_count": int(meta.response_ms is not None),
        "errors": int(message.has_error),
        **feedback_counters(message.feedback),
    }
    return {k: sign * v for k, v in counts.items()}


def feedback_counters(fb: Feedback | None) -> dict[str, int]:
    """What one message's feedback adds to the counters."""
    if fb is None:
        return dict.fromkeys(FEEDBACK_COUNTERS, 0)
    return {
        "feedback_count": 1,
        "helpful_count": int(fb.is_helpful is True),
        "unhelpful_count": int(fb.is_helpful is False),
        "rating_sum": fb.rating or 0,
        "rating_count": int(fb.rating is not None),
        "comment_count": int(bool(fb.comment)),
    }


def difference(old: dict[str, int], new: dict[str, int]) -> dict[str, int]:
    """The counter changes when a write turns `old` counts into `new` ones."""
    return {
        k: new.get(k, 0) - old.get(k, 0) for k in {*old, *new} if new.get(k, 0) != old.get(k, 0)
    }


def execution_counters(status: str, execution_ms: int | None) -> dict[str, int]:
    """What an execution adds when it finishes."""
    if status not in ("success", "failed"):
        return {}
    return {
        "executions_success": int(status == "success"),
        "executions_failed": int(status == "failed"),
        "execution_ms_sum": execution_ms or 0,
    }


def bucket_id(user_id: str, day: datetime) -> str:
    return f"day:{day.strftime('%Y-%m-%d')}:{user_id}"


def _upsert(org_id: str, user_id: str, day: datetime, incs: dict[str, int]) -> UpdateOne:
    now = utcnow()
    return UpdateOne(
        DailyAnalytics.key_of(org_id, bucket_id(user_id, day)),
        {
            "$inc": incs,
            "$set": stamp(now),
            "$setOnInsert": {  # `_id` and `org_id` come from the filter
                "analytics_id": bucket_id(user_id, day),
                "user_id": user_id,
                "period_type": "day",
                "period_key": day.strftime("%Y-%m-%d"),
                "period_start": day,
                "period_start_ms": to_ms(day),
                "created_at": now,
                "created_at_ms": to_ms(now),
            },
        },
        upsert=True,
    )


async def record(
    org_id: str, user_id: str | None, at: datetime | None = None, **increments: int
) -> None:
    """Add `increments` (counter name -> amount) to the org's and the user's bucket of the day."""
    batch = Increments()
    batch.add(user_id, at or utcnow(), **increments)
    await record_batch(org_id, batch)


class Increments:
    """Counter increments gathered from many writes, flushed in one bulk write by
    `record_batch`."""

    def __init__(self) -> None:
        self.buckets: dict[tuple[str, datetime], dict[str, int]] = {}

    def add(self, user_id: str | None, at: datetime, **increments: int) -> None:
        unknown = set(increments) - set(COUNTERS)
        if unknown:
            raise ValueError(f"unknown analytics counters: {sorted(unknown)}")
        day = day_start(at)
        owners = [ORG_WIDE] + ([user_id] if user_id and user_id != ORG_WIDE else [])
        for owner in owners:
            bucket = self.buckets.setdefault((owner, day), {})
            for name, amount in increments.items():
                if amount:
                    bucket[name] = bucket.get(name, 0) + int(amount)


async def record_batch(org_id: str, batch: Increments) -> None:
    """Apply every bucket of `batch` with one bulk write of `$inc` upserts."""
    ops = [
        _upsert(org_id, owner, day, incs)
        for (owner, day), incs in batch.buckets.items()
        if any(incs.values())
    ]
    if not ops:
        return
    coll = DailyAnalytics.get_pymongo_collection()
    try:
        await coll.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        # Two first writes of a day raced on the upsert: retry the ones that lost.
        failed = {e["index"] for e in exc.details.get("writeErrors", []) if e.get("code") == 11000}
        if len(failed) != len(exc.details.get("writeErrors", [])):
            raise
        await coll.bulk_write([ops[i] for i in sorted(failed)], ordered=False)


async def daily(
    org_id: str, start: datetime, end: datetime, user_id: str = ORG_WIDE
) -> list[DailyAnalytics]:
    """One bucket per day from start to end inclusive; days without activity are zeros."""
    days = days_between(start, end)
    found = await DailyAnalytics.find(
        {
            "org_id": org_id,
            "user_id": user_id,
            "period_start_ms": {"$gte": to_ms(days[0]), "$lte": to_ms(days[-1])},
        }
    ).to_list()
    by_day = {b.period_start_ms: b for b in found}
    out = []
    for day in days:
        bucket = by_day.get(to_ms(day))
        if bucket is None:
            bucket = DailyAnalytics(
                org_id=org_id,
                user_id=user_id,
                analytics_id=bucket_id(user_id, day),
                period_key=day.strftime("%Y-%m-%d"),
                period_start=day,
                period_start_ms=to_ms(day),
            )
        out.append(bucket)
    return out


async def summary(
    org_id: str, start: datetime, end: datetime, user_id: str = ORG_WIDE, period: str = "range"
) -> AnalyticsSummary:
    """Counters summed over the days from start to end inclusive."""
    buckets = await daily(org_id, start, end, user_id)
    totals = {c: sum(getattr(b, c) for b in buckets) for c in COUNTERS}
    return AnalyticsSummary(
        org_id=org_id,
        user_id=user_id,
        period_type=period,
        start=day_start(start),
        end=day_start(end),
        days=len(buckets),
        **totals,
    )


async def week(org_id: str, day: datetime, user_id: str = ORG_WIDE) -> AnalyticsSummary:
    """The ISO week (Monday to Sunday) holding `day`."""
    monday = day_start(day) - timedelta(days=day_start(day).weekday())
    return await summary(org_id, monday, monday + timedelta(days=6), user_id, "week")


async def month(org_id: str, day: datetime, user_id: str = ORG_WIDE) -> AnalyticsSummary:
    """The calendar month holding `day`."""
    first = day_start(day).replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return await summary(org_id, first, nxt - timedelta(days=1), user_id, "month")


async def top_users(
    org_id: str, start: datetime, end: datetime, limit: int = 10
) -> list[tuple[str, int]]:
    """The most active users by messages in the range (reads only day buckets)."""
    days = days_between(start, end)
    found = await DailyAnalytics.find(
        {
            "org_id": org_id,
            "period_start_ms": {"$gte": to_ms(days[0]), "$lte": to_ms(days[-1])},
        }
    ).to_list()
    totals: dict[str, int] = {}
    for b in found:
        if b.user_id != ORG_WIDE:
            totals[b.user_id] = totals.get(b.user_id, 0) + b.messages
    return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
