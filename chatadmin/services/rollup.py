"""Rebuild the analytics day buckets from what they count, and read week and month totals.

The write path keeps `chat_analytics` by `$inc` (`services/analytics.py`); this module
recomputes the same buckets from the stored threads, messages and executions with the same
counter functions (`message_counters`, `execution_counters`, one `threads` a thread), so a
rebuild is exactly what the writes would have produced. `manage.py rollup` repairs buckets a
crashed writer left behind; `--check` only compares.

How it runs, per org: read the stored buckets of the range (a snapshot), stream the documents
with cursors and add them up per (user, day) in Python (memory grows with buckets, not with
messages; no `$group`, which the embedded server gets wrong for compound keys), then write
each bucket that differs. A write is compare-and-set: the replace's filter holds the snapshot's
counters, and a bucket that did not exist is inserted under a deterministic `_id`, so a
concurrent `$inc` makes the write miss (or the insert collide) and that day is read and
counted again instead of being overwritten. What is left is the write path's own window: a
message stored but whose counters were not yet applied when the bucket was rewritten is counted
twice (or, for a delete, not at all) until the next rollup; docs/lifecycle.md.

Days that retention folded into month buckets, or whose conversations it purged, are not
rebuilt (their messages are gone while their buckets keep counting them): the rebuild starts
at `protected_until()`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pymongo.errors import DuplicateKeyError

from chatadmin.clock import as_utc, day_start, days_between, from_ms, to_ms, utcnow
from chatadmin.models import DailyAnalytics, Execution, Message, Thread
from chatadmin.models.analytics import COUNTERS, ORG_WIDE, AnalyticsSummary
from chatadmin.models.retention import MonthlyAnalytics, RetentionRun
from chatadmin.services import analytics

DAY_MS = 24 * 3600 * 1000
ATTEMPTS = 5  # rounds of re-counting days that a concurrent write changed meanwhile
MESSAGE_FIELDS = {"org_id": 1, "thread_id": 1, "seq": 1, "role": 1, "user_id": 1,
                  "created_at": 1, "ai_metadata": 1, "has_error": 1, "feedback": 1}  # fmt: skip
Key = tuple[str, int]  # (user or "*", day start in epoch ms)


@dataclass
class Difference:
    """One bucket whose stored counters differ from the recount."""

    user_id: str
    day: str
    stored: dict[str, int]
    counted: dict[str, int]

    @property
    def changes(self) -> dict[str, tuple[int, int]]:
        return {
            c: (self.stored.get(c, 0), self.counted.get(c, 0))
            for c in COUNTERS
            if self.stored.get(c, 0) != self.counted.get(c, 0)
        }

    def describe(self) -> str:
        moves = ", ".join(f"{c} {a} -> {b}" for c, (a, b) in self.changes.items())
        return f"{analytics.bucket_id(self.user_id, parse_day(self.day))}: {moves}"


@dataclass
class RollupReport:
    """What a rebuild (or a check) of one org found and did."""

    org_id: str
    start: datetime | None  # first day rebuilt (None: the org's whole history)
    protected_until: datetime | None = None  # days before it were left alone (retention)
    buckets: int = 0  # buckets compared
    differences: list[Difference] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    retried_days: int = 0
    unsettled_days: list[str] = field(default_factory=list)  # still changing after ATTEMPTS
    checked_only: bool = False
    interrupted: bool = False  # stopped before writing: a write began meanwhile

    @property
    def ok(self) -> bool:
        return not self.differences and not self.unsettled_days and not self.interrupted


def parse_day(day: str) -> datetime:
    """Midnight UTC of a `YYYY-MM-DD` day."""
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)


def _day_key(ms: int) -> str:
    return from_ms(ms).strftime("%Y-%m-%d")


def _zero() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


async def org_ids() -> list[str]:
    """Every org that has something the buckets count, or buckets."""
    found: set[str] = set()
    for model in (Thread, Message, Execution, DailyAnalytics):
        found.update(await model.get_pymongo_collection().distinct("org_id"))
    return sorted(found)


async def protected_until(org_id: str) -> datetime | None:
    """The first day a rebuild may rewrite: after the newest folded month and after the newest
    cutoff of a conversation purge (those days' messages are gone, their buckets stay)."""
    limit = 0
    newest = MonthlyAnalytics.find({"org_id": org_id}).sort([("period_start_ms", -1)]).limit(1)
    for month in await newest.to_list():
        start = from_ms(month.period_start_ms)
        limit = max(limit, to_ms((start + timedelta(days=32)).replace(day=1)))
    async for run in RetentionRun.get_pymongo_collection().find({}, {"units": 1}):
        for unit in run.get("units", []):
            if (
                unit["org_id"] == org_id
                and unit["collection"] == Thread.Settings.name
                and unit["action"] == "purge"
                and unit["state"] != "planned"
            ):
                limit = max(limit, to_ms(day_start(from_ms(unit["cutoff_ms"]))) + DAY_MS)
    return from_ms(limit) if limit else None


def _range(start_ms: int | None, days: Iterable[int] | None) -> list[dict]:
    """`created_at_ms` conditions: from `start_ms` on, or one per day in `days`."""
    if days is None:
        return [{"$gte": start_ms}] if start_ms else [{}]
    return [{"$gte": d, "$lt": d + DAY_MS} for d in sorted(days)]


async def recount(
    org_id: str, start_ms: int | None = None, days: Iterable[int] | None = None
) -> dict[Key, dict[str, int]]:
    """What the write path puts in the org's buckets, from the stored documents: every thread
    created, every message not deleted, every finished execution, on its creation day."""
    total = analytics.Increments()
    ranges = _range(start_ms, days)
    for cond in ranges:
        query = {"org_id": org_id, **({"created_at_ms": cond} if cond else {})}
        cursor = Thread.get_pymongo_collection().find(query, {"user_id": 1, "created_at": 1})
        async for t in cursor:
            total.add(t["user_id"], t["created_at"], threads=1)
        cursor = Message.get_pymongo_collection().find({**query, "deleted": False}, MESSAGE_FIELDS)
        async for doc in cursor:
            m = Message.model_validate(doc)
            total.add(m.user_id, m.created_at, **analytics.message_counters(m))
        finished = {**query, "status": {"$in": ["success", "failed"]}}
        fields = {"user_id": 1, "created_at": 1, "status": 1, "execution_ms": 1}
        async for r in Execution.get_pymongo_collection().find(finished, fields):
            counts = analytics.execution_counters(r["status"], r.get("execution_ms"))
            total.add(r.get("user_id"), r["created_at"], **counts)
    return {
        (owner, to_ms(day)): {**_zero(), **incs} for (owner, day), incs in total.buckets.items()
    }


async def _stored(org_id: str, start_ms: int | None, days: Iterable[int] | None) -> dict[Key, dict]:
    """The stored day buckets of the range, by (user, day)."""
    out = {}
    for cond in _range(start_ms, days):
        query = {"org_id": org_id, **({"period_start_ms": cond} if cond else {})}
        async for doc in DailyAnalytics.get_pymongo_collection().find(query):
            out[(doc["user_id"], doc["period_start_ms"])] = doc
    return out


def _counters(doc: dict | None) -> dict[str, int]:
    return {c: int((doc or {}).get(c, 0) or 0) for c in COUNTERS}


async def _write(org_id: str, key: Key, stored: dict | None, counted: dict[str, int]) -> bool:
    """Compare-and-set one bucket to `counted`; False when a concurrent write got there."""
    coll = DailyAnalytics.get_pymongo_collection()
    now = utcnow()
    user_id, day_ms = key
    if stored is not None:
        # Every counter as read: a missing one (never `$inc`ed) must still be missing (null).
        guard = {"_id": stored["_id"], **{c: stored.get(c) for c in COUNTERS}}
        doc = {k: v for k, v in stored.items() if k != "_id"}
        doc.update(counted)
        doc["updated_at_ms"] = max(to_ms(now), int(stored.get("updated_at_ms", 0)) + 1)
        result = await coll.replace_one(guard, doc)
        return result.matched_count == 1
    day = from_ms(day_ms)
    bucket = DailyAnalytics(
        org_id=org_id,
        user_id=user_id,
        analytics_id=analytics.bucket_id(user_id, day),
        period_key=day.strftime("%Y-%m-%d"),
        period_start=day,
        period_start_ms=day_ms,
        created_at=now,
        **counted,
    ).stamped()
    try:
        await coll.insert_one(bucket.storage_fields())
    except DuplicateKeyError:
        return False
    return True


async def rebuild(
    org_id: str,
    since: datetime | None = None,
    *,
    check: bool = False,
    quiet: Callable[[], Awaitable[bool]] | None = None,
) -> RollupReport:
    """Rebuild (or with `check`, only compare) the org's day buckets from `since` (a day; the
    whole history when None) on, never before `protected_until`.

    `quiet`, asked after each count and before its writes: False stops the rebuild there (a
    write began meanwhile; its messages may be in the count but not yet in the buckets), and the
    report lists the days as unsettled.
    """
    protected = await protected_until(org_id)
    start = day_start(as_utc(since)) if since else None
    if protected and (start is None or start < protected):
        start = protected
    report = RollupReport(org_id, start, protected, checked_only=check)
    start_ms = to_ms(start) if start else None
    days: set[int] | None = None  # None: the whole range; then only the days to count again
    for attempt in range(ATTEMPTS):
        stored = await _stored(org_id, start_ms, days)
        counted = await recount(org_id, start_ms, days)
        if quiet is not None and not await quiet():
            report.unsettled_days = sorted({_day_key(k[1]) for k in {*stored, *counted}})
            report.interrupted = True
            return report
        retry: set[int] = set()
        for key in sorted(set(stored) | set(counted)):
            before, after = _counters(stored.get(key)), counted.get(key, _zero())
            if attempt == 0:
                report.buckets += 1
            if before == after:
                continue
            if attempt == 0:
                report.differences.append(Difference(key[0], _day_key(key[1]), before, after))
            if check:
                continue
            if await _write(org_id, key, stored.get(key), after):
                if key in stored:
                    report.updated += 1
                else:
                    report.created += 1
            else:
                retry.add(key[1])
        if check or not retry:
            return report
        report.retried_days += len(retry)
        days = retry
    report.unsettled_days = sorted(_day_key(d) for d in days or ())
    return report


async def rebuild_all(
    org_id: str | None = None, since: datetime | None = None, *, check: bool = False
) -> list[RollupReport]:
    """`rebuild` for one org, or for every org."""
    orgs = [org_id] if org_id else await org_ids()
    return [await rebuild(o, since, check=check) for o in orgs]


# -- week and month totals -----------------------------------------------------------------------


class PeriodSummary(AnalyticsSummary):
    """Week or month totals; `folded` says part of the period only exists as month buckets
    (a week inside a folded month has no day detail any more, so its totals are partial)."""

    folded: bool = False


async def _folded(org_id: str, user_id: str, first: datetime, last: datetime) -> list:
    """The month buckets of the months from `first` to `last`."""
    months = {to_ms(d.replace(day=1)) for d in days_between(first, last)}
    return await MonthlyAnalytics.find(
        {"org_id": org_id, "user_id": user_id, "period_start_ms": {"$in": sorted(months)}}
    ).to_list()


async def month_summary(org_id: str, day: datetime, user_id: str = ORG_WIDE) -> PeriodSummary:
    """The calendar month holding `day`: its day buckets plus what folding moved into month
    buckets (the same totals before and after a fold)."""
    days = await analytics.month(org_id, day, user_id)
    folds = await _folded(org_id, user_id, days.start, days.end)
    totals = {c: getattr(days, c) + sum(getattr(f, c) for f in folds) for c in COUNTERS}
    data = {**days.model_dump(), **totals, "folded": bool(folds)}
    return PeriodSummary(**data)


async def week_summary(org_id: str, day: datetime, user_id: str = ORG_WIDE) -> PeriodSummary:
    """The ISO week holding `day`, summed from its day buckets (`folded` when a month it
    touches was folded: those days are no longer kept one by one)."""
    days = await analytics.week(org_id, day, user_id)
    folds = await _folded(org_id, user_id, days.start, days.end)
    return PeriodSummary(**days.model_dump(), folded=bool(folds))


def describe(reports: list[RollupReport], *, check: bool = False) -> list[str]:
    """What a rebuild or a check did, for the command line."""
    lines = []
    for r in reports:
        since = f" from {r.start:%Y-%m-%d}" if r.start else ""
        kept = (
            f"; days before {r.protected_until:%Y-%m-%d} left alone (retention folded or purged"
            " what they count)"
            if r.protected_until
            else ""
        )
        if check:
            state = f"{len(r.differences)} differ" if r.differences else "all match"
            lines.append(f"{r.org_id}: {r.buckets} buckets{since} checked, {state}{kept}")
        else:
            lines.append(
                f"{r.org_id}: {r.buckets} buckets{since}, {r.updated} rewritten, {r.created} "
                f"created, {r.retried_days} day(s) counted again after concurrent writes{kept}"
            )
        lines += [f"  {d.describe()}" for d in r.differences[:50]]
        if len(r.differences) > 50:
            lines.append(f"  ... and {len(r.differences) - 50} more")
        if r.unsettled_days:
            lines.append(f"  still changing: {', '.join(r.unsettled_days)}")
    return lines or ["No org has anything to count."]
