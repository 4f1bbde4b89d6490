"""Analytics: per-day buckets per org ("*") and per user, kept by `$inc` at write time."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from chatadmin.clock import to_ms
from chatadmin.models import DailyAnalytics
from chatadmin.models.analytics import COUNTERS, ORG_WIDE
from chatadmin.services import analytics, messages, threads

pytestmark = pytest.mark.usefixtures("database")

# A fixed week in the past: Monday 2024-03-04 .. Sunday 2024-03-10 (March has 31 days).
MON = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)


def at(days: int, hour: int = 0) -> datetime:
    return MON + timedelta(days=days, hours=hour)


async def _buckets(org="org-a") -> dict[tuple[str, str], DailyAnalytics]:
    found = await DailyAnalytics.find({"org_id": org}).to_list()
    return {(b.user_id, b.period_key): b for b in found}


async def test_message_writes_increment_org_wide_and_per_user_day_buckets():
    t1 = await threads.create_thread("org-a", "u1", created_at=at(0))
    t2 = await threads.create_thread("org-a", "u2", created_at=at(0))
    await messages.append_message("org-a", t1.thread_id, role="user", content="q", created_at=at(0))
    await messages.append_message(
        "org-a", t1.thread_id, role="assistant", content="a", created_at=at(0, 1),
        ai_metadata={"input_tokens": 10, "output_tokens": 5, "response_ms": 700},
    )  # fmt: skip
    await messages.append_message(
        "org-a", t2.thread_id, role="user", content="q", created_at=at(1), status="error"
    )
    buckets = await _buckets()
    org_day0, u1_day0 = buckets[(ORG_WIDE, "2024-03-04")], buckets[("u1", "2024-03-04")]
    for b in (org_day0, u1_day0):
        assert b.messages == 2 and b.user_messages == 1 and b.assistant_messages == 1
        assert b.tokens_input == 10 and b.tokens_output == 5 and b.tokens_total == 15
        assert b.response_ms_sum == 700 and b.response_count == 1
    assert org_day0.threads == 2 and u1_day0.threads == 1
    assert buckets[("u2", "2024-03-04")].threads == 1
    assert buckets[("u2", "2024-03-04")].messages == 0
    org_day1, u2_day1 = buckets[(ORG_WIDE, "2024-03-05")], buckets[("u2", "2024-03-05")]
    assert org_day1.messages == u2_day1.messages == 1 and org_day1.errors == u2_day1.errors == 1
    assert ("u1", "2024-03-05") not in buckets
    assert org_day0.period_start == datetime(2024, 3, 4, tzinfo=UTC)
    assert org_day0.period_start_ms == to_ms(datetime(2024, 3, 4, tzinfo=UTC))
    assert await _buckets("org-b") == {}


async def test_one_bucket_per_org_user_and_day():
    for i in range(3):
        await analytics.record("org-a", "u1", at(0, i), messages=1)
    await analytics.record("org-a", ORG_WIDE, at(0), messages=1)  # org-wide only, not twice
    await analytics.record("org-a", None, at(0), messages=1)
    buckets = await _buckets()
    assert set(buckets) == {(ORG_WIDE, "2024-03-04"), ("u1", "2024-03-04")}
    assert buckets[(ORG_WIDE, "2024-03-04")].messages == 5
    assert buckets[("u1", "2024-03-04")].messages == 3


async def test_week_and_month_sum_their_days_only():
    await analytics.record("org-a", "u1", at(-1), messages=100)  # Sunday of the week before
    for day, n in ((0, 1), (2, 2), (6, 4)):  # Monday, Wednesday, Sunday
        await analytics.record("org-a", "u1", at(day, 13), messages=n, tokens_total=10 * n)
    await analytics.record("org-a", "u1", at(7), messages=1000)  # Monday of the next week
    await analytics.record("org-a", "u1", datetime(2024, 4, 1, tzinfo=UTC), messages=10_000)
    await analytics.record("org-a", "u1", datetime(2024, 2, 29, tzinfo=UTC), messages=20_000)

    week = await analytics.week("org-a", at(3))
    assert week.messages == 7 and week.tokens_total == 70 and week.days == 7
    assert week.start == datetime(2024, 3, 4, tzinfo=UTC)
    assert week.end == datetime(2024, 3, 10, tzinfo=UTC) and week.period_type == "week"
    assert (await analytics.week("org-a", at(6, 14))).messages == 7
    assert (await analytics.week("org-a", at(0), user_id="u1")).messages == 7

    month = await analytics.month("org-a", at(10))
    assert month.messages == 100 + 7 + 1000 and month.days == 31
    assert month.start == datetime(2024, 3, 1, tzinfo=UTC)
    assert month.end == datetime(2024, 3, 31, tzinfo=UTC)
    feb = await analytics.month("org-a", datetime(2024, 2, 10, tzinfo=UTC))
    assert feb.days == 29 and feb.messages == 20_000


async def test_daily_fills_days_without_activity_with_zeros():
    await analytics.record("org-a", "u1", at(1), messages=3)
    await analytics.record("org-a", "u1", at(3), messages=5)
    days = await analytics.daily("org-a", at(0), at(4))
    assert [d.period_key for d in days] == [f"2024-03-0{i}" for i in range(4, 9)]
    assert [d.messages for d in days] == [0, 3, 0, 5, 0]
    assert all(d.user_id == ORG_WIDE and d.org_id == "org-a" for d in days)
    assert days[0].period_start_ms == to_ms(datetime(2024, 3, 4, tzinfo=UTC))
    assert all(getattr(days[0], c) == 0 for c in COUNTERS)
    per_user = await analytics.daily("org-a", at(0), at(4), user_id="u2")
    assert [d.messages for d in per_user] == [0] * 5
    # Reading never writes zero buckets.
    assert len(await _buckets()) == 4


async def test_top_users_by_messages_in_range():
    for user, n, day in (("u1", 3, 0), ("u2", 5, 1), ("u3", 1, 2), ("u1", 4, 3), ("u4", 50, 9)):
        await analytics.record("org-a", user, at(day), messages=n)
    await analytics.record("org-b", "u9", at(0), messages=99)
    top = await analytics.top_users("org-a", at(0), at(6))
    assert top == [("u1", 7), ("u2", 5), ("u3", 1)]
    assert await analytics.top_users("org-a", at(0), at(6), limit=2) == [("u1", 7), ("u2", 5)]
    assert await analytics.top_users("org-a", at(1), at(1)) == [("u2", 5)]


async def test_record_rejects_unknown_counters_and_writes_nothing():
    with pytest.raises(ValueError):
        await analytics.record("org-a", "u1", at(0), messages=1, bogus=1)
    with pytest.raises(ValueError):
        await analytics.record("org-a", "u1", at(0), **{"$inc": 1})
    assert await DailyAnalytics.find({}).count() == 0


async def test_record_of_only_zeros_writes_nothing_and_negative_amounts_subtract():
    await analytics.record("org-a", "u1", at(0), messages=0, threads=0)
    assert await DailyAnalytics.find({}).count() == 0
    await analytics.record("org-a", "u1", at(0), helpful_count=2)
    await analytics.record("org-a", "u1", at(0), helpful_count=-1, unhelpful_count=1)
    day = await analytics.summary("org-a", at(0), at(0))
    assert day.helpful_count == 1 and day.unhelpful_count == 1


async def test_concurrent_records_on_a_fresh_day_all_count():
    fresh = datetime(2023, 7, 14, 12, tzinfo=UTC)
    await asyncio.gather(
        *[
            analytics.record("org-a", f"u{i % 3}", fresh, messages=1, tokens_total=i)
            for i in range(30)
        ]
    )
    buckets = await _buckets()
    assert set(buckets) == {(u, "2023-07-14") for u in (ORG_WIDE, "u0", "u1", "u2")}
    assert buckets[(ORG_WIDE, "2023-07-14")].messages == 30
    assert buckets[(ORG_WIDE, "2023-07-14")].tokens_total == sum(range(30))
    assert [buckets[(f"u{k}", "2023-07-14")].messages for k in range(3)] == [10, 10, 10]


async def test_concurrent_records_for_one_user_on_a_fresh_day_all_count():
    fresh = datetime(2023, 8, 1, tzinfo=UTC)
    await asyncio.gather(*[analytics.record("org-a", "u1", fresh, messages=1) for _ in range(30)])
    summary = await analytics.summary("org-a", fresh, fresh)
    assert summary.messages == 30
    assert (await analytics.summary("org-a", fresh, fresh, user_id="u1")).messages == 30
    assert await DailyAnalytics.find({"org_id": "org-a"}).count() == 2
