"""Rollup rebuild: the day buckets rebuilt from threads, messages and executions equal what the
write path kept, a corrupted bucket is repaired, a second rebuild changes nothing, `check` only
reports, a concurrent write is not lost, and week and month totals sum the days."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from chatadmin.admin import dashboard
from chatadmin.clock import day_start, to_ms, utcnow
from chatadmin.models import DailyAnalytics, Message
from chatadmin.models.analytics import COUNTERS, ORG_WIDE
from chatadmin.services import analytics, executions, messages, rollup, threads

pytestmark = pytest.mark.usefixtures("database")


async def _buckets(org: str) -> dict[tuple[str, str], dict[str, int]]:
    """Every non-zero bucket of an org as plain counters (a zero bucket equals no bucket)."""
    out = {}
    async for b in DailyAnalytics.find({"org_id": org}):
        counts = {c: getattr(b, c) for c in COUNTERS}
        if any(counts.values()):
            out[(b.user_id, b.period_key)] = counts
    return out


async def _random_writes(org: str, seed: int, days: int = 20) -> None:
    """Threads, messages (tokens, errors, feedback), edits, soft deletes, restores and
    executions spread over the last `days` days, all through the services."""
    rng = random.Random(seed)
    now = utcnow()
    made = []
    for t in range(4):
        user = f"u{t % 3}"
        start = now - timedelta(days=rng.randrange(days), hours=rng.randrange(5))
        thread = await threads.create_thread(org, user, thread_id=f"{org}-t{t}", created_at=start)
        for i in range(rng.randrange(3, 8)):
            at = start + timedelta(minutes=37 * i)
            assistant = i % 2 == 1
            meta = {"input_tokens": rng.randrange(50), "output_tokens": rng.randrange(80),
                    "response_ms": rng.randrange(100, 900)} if assistant else None  # fmt: skip
            made.append(
                await messages.append_message(
                    org,
                    thread.thread_id,
                    role="assistant" if assistant else "user",
                    user_id=user,
                    content=f"m{i}",
                    created_at=at,
                    ai_metadata=meta,
                    status="error" if rng.random() < 0.15 else "sent",
                )
            )
    for m in rng.sample(made, 4):
        await messages.set_feedback(org, m.message_id, is_helpful=rng.random() < 0.5,
                                    rating=rng.randrange(1, 6), comment="ok")  # fmt: skip
    for m in rng.sample(made, 2):
        await messages.edit_message(org, m.message_id, ai_metadata={"total_tokens": 999})
    gone = rng.sample(made, 3)
    for m in gone:
        await messages.soft_delete(org, m.message_id)
    await messages.restore(org, gone[0].message_id)
    for n in range(3):
        run = await executions.create_execution(org, user_id="u1", thread_id=f"{org}-t0")
        await executions.transition(org, run.execution_id, "running")
        await executions.transition(
            org, run.execution_id, "success" if n else "failed", execution_ms=100 + n
        )
    await executions.create_execution(org, user_id="u2")  # pending: counts nothing yet


async def test_rebuild_after_random_writes_equals_the_write_time_buckets():
    await _random_writes("org-a", seed=1)
    await _random_writes("org-b", seed=2)
    kept = {org: await _buckets(org) for org in ("org-a", "org-b")}
    assert kept["org-a"] and kept["org-b"]

    checked = await rollup.rebuild("org-a", check=True)
    assert checked.ok and checked.buckets >= len(kept["org-a"])
    report = await rollup.rebuild("org-a")
    assert report.differences == [] and report.created == report.updated == 0
    assert await _buckets("org-a") == kept["org-a"]

    # What the tests count independently: messages per day, org-wide.
    live = [m async for m in Message.find({"org_id": "org-a", "deleted": False})]
    per_day = Counter(m.created_at.strftime("%Y-%m-%d") for m in live)
    assert {d: b["messages"] for (u, d), b in kept["org-a"].items()
            if u == ORG_WIDE and b["messages"]} == per_day  # fmt: skip


async def test_rebuild_repairs_corrupted_buckets_and_a_second_rebuild_changes_nothing():
    await _random_writes("org-a", seed=3)
    await _random_writes("org-b", seed=4)
    kept = await _buckets("org-a")
    other = await _buckets("org-b")
    coll = DailyAnalytics.get_pymongo_collection()
    (user, day), counts = sorted(kept.items())[0]
    await coll.update_one({"org_id": "org-a", "user_id": user, "period_key": day},
                          {"$inc": {"messages": 5, "tokens_total": -3}})  # fmt: skip
    victim = sorted(k for k in kept if k[0] == ORG_WIDE)[-1]
    await coll.delete_one({"org_id": "org-a", "user_id": victim[0], "period_key": victim[1]})
    await analytics.record("org-a", "ghost", datetime(2024, 1, 2, tzinfo=UTC), messages=7)
    await analytics.record("org-b", "ghost", datetime(2024, 1, 2, tzinfo=UTC), messages=7)

    checked = await rollup.rebuild("org-a", check=True)
    assert not checked.ok
    found = {(d.user_id, d.day): d.changes for d in checked.differences}
    assert found[(user, day)]["messages"] == (counts["messages"] + 5, counts["messages"])
    assert found[victim]["messages"] == (0, kept[victim]["messages"])
    assert found[("ghost", "2024-01-02")] == {"messages": (7, 0)}
    assert found[(ORG_WIDE, "2024-01-02")] == {"messages": (7, 0)}
    assert len(found) == 4
    assert await _buckets("org-a") != kept  # a check writes nothing

    repaired = await rollup.rebuild("org-a")
    assert len(repaired.differences) == 4
    assert repaired.created == 1 and repaired.updated == 3
    assert await _buckets("org-a") == kept
    recreated = await coll.find_one({"org_id": "org-a", "user_id": victim[0],
                                     "period_key": victim[1]})  # fmt: skip
    assert recreated["_id"] == f"org-a~day:{victim[1]}:{victim[0]}"  # deterministic
    assert recreated["period_start"] == day_start(datetime.fromisoformat(victim[1] + "T00:00Z"))

    raw_before = await coll.find({"org_id": "org-a"}).sort("_id", 1).to_list()
    again = await rollup.rebuild("org-a")
    assert again.ok and again.created == again.updated == 0
    assert await coll.find({"org_id": "org-a"}).sort("_id", 1).to_list() == raw_before
    assert (await rollup.rebuild("org-a", check=True)).ok
    # Org isolation: org-b's bogus bucket is still there.
    assert (await _buckets("org-b"))[("ghost", "2024-01-02")] == {
        **dict.fromkeys(COUNTERS, 0), "messages": 7}  # fmt: skip
    assert {k: v for k, v in (await _buckets("org-b")).items() if k[1] != "2024-01-02"} == other


async def test_since_rebuilds_only_the_days_from_it():
    old = datetime(2024, 5, 1, 10, tzinfo=UTC)
    new = datetime(2024, 5, 20, 10, tzinfo=UTC)
    for at in (old, new):
        t = await threads.create_thread("org-a", "u1", created_at=at)
        await messages.append_message("org-a", t.thread_id, role="user", content="q",
                                      user_id="u1", created_at=at)  # fmt: skip
    await analytics.record("org-a", "u1", old, messages=10)
    await analytics.record("org-a", "u1", new, messages=10)
    report = await rollup.rebuild("org-a", since=datetime(2024, 5, 10, 15, tzinfo=UTC))
    assert report.start == datetime(2024, 5, 10, tzinfo=UTC)
    assert {d.day for d in report.differences} == {"2024-05-20"}
    summary = await analytics.summary("org-a", old, old)
    assert summary.messages == 11  # before --since: left alone
    assert (await analytics.summary("org-a", new, new)).messages == 1


async def test_a_write_during_the_rebuild_is_counted_once(monkeypatch):
    """The bucket is compare-and-set: a message appended (and `$inc`ed) after the rebuild read
    the buckets makes its write miss, and the day is counted again."""
    today = utcnow() - timedelta(minutes=5)
    t = await threads.create_thread("org-a", "u1", thread_id="busy", created_at=today)
    await messages.append_message("org-a", "busy", role="user", content="q", created_at=today)
    await DailyAnalytics.get_pymongo_collection().update_many(
        {"org_id": "org-a"}, {"$inc": {"messages": 100}}
    )  # corrupted, so the rebuild has something to write
    real = rollup.recount
    calls = []

    async def recount_then_a_write(org_id, start_ms=None, days=None):
        counted = await real(org_id, start_ms, days)
        if not calls:
            await messages.append_message("org-a", t.thread_id, role="assistant", content="a",
                                          created_at=today)  # fmt: skip
        calls.append(days)
        return counted

    monkeypatch.setattr(rollup, "recount", recount_then_a_write)
    report = await rollup.rebuild("org-a")
    assert report.retried_days == 1 and len(calls) == 2 and calls[1] == {to_ms(day_start(today))}
    monkeypatch.setattr(rollup, "recount", real)
    day = await analytics.summary("org-a", today, today)
    assert day.messages == 2 and day.user_messages == 1 and day.assistant_messages == 1
    assert (await rollup.rebuild("org-a", check=True)).ok


async def test_week_and_month_summaries_sum_the_days():
    mon = datetime(2024, 3, 4, 12, tzinfo=UTC)
    for offset, n in ((-1, 100), (0, 1), (3, 2), (6, 4), (7, 1000), (30, 10_000)):
        await analytics.record("org-a", "u1", mon + timedelta(days=offset), messages=n)
    week = await rollup.week_summary("org-a", mon + timedelta(days=2))
    assert week.messages == 7 and week.period_type == "week" and not week.folded
    assert (await rollup.week_summary("org-a", mon, user_id="u1")).messages == 7
    month = await rollup.month_summary("org-a", mon)
    assert month.messages == 100 + 7 + 1000 and month.days == 31 and not month.folded
    assert (await rollup.month_summary("org-a", mon + timedelta(days=30))).messages == 10_000


async def test_the_dashboard_reads_the_same_numbers_after_a_rebuild(database):
    await _random_writes("org-a", seed=5)
    request = SimpleNamespace(state=SimpleNamespace(admin_user=None))
    before = (await dashboard.series(request), await dashboard.top_users(request))
    await DailyAnalytics.get_pymongo_collection().delete_many({"org_id": "org-a"})
    assert (await dashboard.series(request))["summed"]["messages"] == 0
    report = await rollup.rebuild("org-a")
    assert report.created > 0 and report.updated == 0
    assert (await dashboard.series(request), await dashboard.top_users(request)) == before


async def test_rebuild_all_covers_every_org_and_describes_what_it_did():
    await _random_writes("org-a", seed=6, days=3)
    await _random_writes("org-b", seed=7, days=3)
    await DailyAnalytics.get_pymongo_collection().update_many(
        {"org_id": "org-b", "user_id": ORG_WIDE}, {"$inc": {"errors": 1}}
    )
    checked = await rollup.rebuild_all(check=True)
    assert [r.org_id for r in checked] == ["org-a", "org-b"]
    assert checked[0].ok and not checked[1].ok
    lines = rollup.describe(checked, check=True)
    assert lines[0].startswith("org-a:") and "all match" in lines[0]
    assert "differ" in lines[1] and "errors" in lines[2]
    done = await rollup.rebuild_all("org-b")
    assert [r.org_id for r in done] == ["org-b"] and done[0].updated == len(checked[1].differences)
    assert all(r.ok for r in await rollup.rebuild_all(check=True))


async def test_the_compare_and_set_misses_when_a_counter_appeared_meanwhile():
    """A bucket holds only the counters ever `$inc`ed; the guard asks a missing one to be
    missing (`{field: null}`), so an `$inc` that creates it makes the rewrite miss (a rule
    every server keeps: equality to null matches a missing field)."""
    day = datetime(2024, 6, 3, tzinfo=UTC)
    await analytics.record("org-a", None, day, messages=1)
    coll = DailyAnalytics.get_pymongo_collection()
    stored = await coll.find_one({"org_id": "org-a"})
    assert "errors" not in stored
    key = (ORG_WIDE, to_ms(day))
    counted = {**dict.fromkeys(COUNTERS, 0), "messages": 1}
    await analytics.record("org-a", None, day, errors=1)
    assert not await rollup._write("org-a", key, stored, counted)
    assert (await coll.find_one({"_id": stored["_id"]}))["errors"] == 1
    fresh = await coll.find_one({"_id": stored["_id"]})
    assert await rollup._write("org-a", key, fresh, counted)
    assert (await coll.find_one({"_id": stored["_id"]}))["errors"] == 0
