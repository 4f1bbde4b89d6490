"""Every door (REST, /ingest, admin) writes through the same rule: the disagreements that two
copies of a rule once had, each pinned, and an interleaving of all doors against a recount."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest

from chatadmin.clock import day_start, utcnow
from chatadmin.models import AuditLog, ChatContext, Message, Thread
from chatadmin.services import analytics, contexts, executions, messages, threads
from tests.factories import make_thread, make_user
from tests.rollups import assert_rollups_match_recount

pytestmark = pytest.mark.usefixtures("database")


def batch(*events):
    return {"events": [{"type": t, "id": i, "data": d} for t, i, d in events]}


def conversation(thread_id: str, n: int, user_id: str = "u1") -> dict:
    """A thread and its n messages, as a retrying client sends them again and again."""
    events = [("thread", thread_id, {"user_id": user_id, "title": "Retried"})]
    for i in range(n):
        events.append(
            (
                "message",
                f"{thread_id}-m{i}",
                {
                    "thread_id": thread_id,
                    "role": "user" if i % 2 == 0 else "assistant",
                    "content": f"message {i}",
                    "ai_metadata": {"model": "m", "total_tokens": 10 + i, "response_ms": 5},
                },
            )
        )
    return batch(*events)


async def test_concurrent_identical_ingest_batches_keep_seqs_gap_free(client, make_key):
    h = await make_key("org-a", "ingest")
    await make_user("org-a", "u1")
    body = conversation("t-retry", 5)
    answers = await asyncio.gather(
        *(client.post("/api/v1/ingest", json=body, headers=h) for _ in range(4))
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    created = [r["id"] for a in answers for r in a.json()["results"] if r["status"] == "created"]
    assert sorted(x for x in created if x != "t-retry") == [f"t-retry-m{i}" for i in range(5)]
    for a in answers:  # the losers of each race report their event as stored, not an error
        assert {r["status"] for r in a.json()["results"]} <= {"created", "unchanged"}, a.text

    thread = await Thread.find_one({"org_id": "org-a", "thread_id": "t-retry"})
    assert (thread.message_count, thread.next_seq) == (5, 5)
    assert thread.total_tokens == sum(10 + i for i in range(5))
    appended = await client.post(
        "/api/v1/threads/t-retry/messages", json={"role": "user", "content": "next"}, headers=h
    )
    assert appended.status_code == 201, appended.text
    assert appended.json()["seq"] == 5
    await assert_rollups_match_recount("org-a", "t-retry")


async def test_ingest_context_update_merges_fields(client, make_key):
    h = await make_key("org-a", "ingest")
    await contexts.upsert_context(
        "org-a",
        "c1",
        key_points=["rates"],
        decisions=["hedge the book"],
        subject={"pair": "EURUSD"},
    )
    body = batch(("context", "c1", {"key_points": ["rates", "oil"]}))
    r = await client.post("/api/v1/ingest", json=body, headers=h)
    assert r.json()["results"][0]["status"] == "updated", r.text
    stored = await ChatContext.find_one({"org_id": "org-a", "context_id": "c1"})
    assert stored.key_points == ["rates", "oil"]
    assert stored.decisions == ["hedge the book"] and stored.subject == {"pair": "EURUSD"}


async def test_ingest_contexts_expire_after_the_configured_days(app, client, make_key):
    h = await make_key("org-a", "ingest")
    app.state.settings.chatadmin_context_ttl_days = 7
    try:
        r = await client.post("/api/v1/ingest", json=batch(("context", "c7", {})), headers=h)
        assert r.json()["results"][0]["status"] == "created", r.text
        await contexts.upsert_context("org-a", "c8", ttl_days=30)
        update = batch(("context", "c8", {"subject": {"pair": "later"}}))
        r = await client.post("/api/v1/ingest", json=update, headers=h)
        assert r.json()["results"][0]["status"] == "updated", r.text
    finally:
        app.state.settings.chatadmin_context_ttl_days = 90
    stored = await ChatContext.find_one({"org_id": "org-a", "context_id": "c7"})
    left = stored.expires_at - utcnow()
    assert timedelta(days=6, hours=23) < left <= timedelta(days=7)
    updated = await ChatContext.find_one({"org_id": "org-a", "context_id": "c8"})
    assert abs(updated.expires_at - stored.expires_at) < timedelta(minutes=1)


async def test_ingest_execution_transition_updates_message_and_dates_analytics(client, make_key):
    h = await make_key("org-a", "ingest")
    thread = await make_thread("org-a", "u1", "t-exec")
    then = utcnow() - timedelta(days=3)
    message, _analysis, run = await messages.add_assistant_message_with_analysis(
        "org-a",
        thread.thread_id,
        analysis={"title": "Volatility", "question": "volatility?"},
        execution={"created_at": then},
        content="running a script",
    )
    assert message.execution_status == "pending"
    for status in ("running", "success"):
        body = batch(("execution", run.execution_id, {"status": status, "execution_ms": 40}))
        r = await client.post("/api/v1/ingest", json=body, headers=h)
        assert r.json()["results"][0]["status"] == "updated", r.text
    stored = await Message.find_one({"org_id": "org-a", "message_id": message.message_id})
    assert stored.execution_status == "success"
    that_day = await analytics.summary("org-a", then, then)
    today = await analytics.summary("org-a", utcnow(), utcnow())
    assert (that_day.executions_success, that_day.execution_ms_sum) == (1, 40)
    assert today.executions_success == 0


async def test_ingest_can_create_an_execution_already_finished(client, make_key):
    h = await make_key("org-a", "ingest")
    body = batch(("execution", "x-done", {"status": "success", "execution_ms": 12}))
    r = await client.post("/api/v1/ingest", json=body, headers=h)
    assert r.json()["results"][0]["status"] == "created", r.text
    run = await executions.get_execution("org-a", "x-done")
    assert run.started_at_ms and run.completed_at_ms
    today = await analytics.summary("org-a", utcnow(), utcnow())
    assert (today.executions_success, today.execution_ms_sum) == (1, 12)


async def test_api_and_ingest_audit_threads_and_messages_with_one_vocabulary(client, make_key):
    h = await make_key("org-a", "ingest")
    await make_user("org-a", "u1")
    made = await client.post("/api/v1/threads", json={"user_id": "u1"}, headers=h)
    tid = made.json()["thread_id"]
    await client.post(
        f"/api/v1/threads/{tid}/messages", json={"role": "user", "content": "hi"}, headers=h
    )
    await client.post("/api/v1/ingest", json=conversation("t-ing", 1), headers=h)
    kinds = {(a.action, a.resource_type) for a in await AuditLog.find({}).to_list()}
    assert {("thread_created", "thread"), ("message_created", "message")} <= kinds
    assert {r for _, r in kinds} <= {"thread", "message", "user"}, kinds


# -- every door on one thread, against a recount ------------------------------------------------


async def _interleave(seed: int, client, headers) -> None:
    rng = random.Random(seed)
    tid = f"t-mix-{seed}"
    pool = conversation(tid, 8)["events"]

    async def ingest_retry():
        picked = [pool[0], *rng.sample(pool[1:], rng.randint(1, 4))]
        body = {"events": picked}
        await asyncio.gather(
            *(
                client.post("/api/v1/ingest", json=body, headers=headers)
                for _ in range(rng.randint(1, 3))
            )
        )

    async def rest_append():
        if await Thread.find_one({"org_id": "org-a", "thread_id": tid}) is None:
            return
        body = {"role": "assistant", "content": "via rest",
                "ai_metadata": {"total_tokens": rng.randint(1, 50), "response_ms": 3}}  # fmt: skip
        r = await client.post(f"/api/v1/threads/{tid}/messages", json=body, headers=headers)
        assert r.status_code == 201, r.text

    async def delete_or_restore():
        found = await Message.find({"org_id": "org-a", "thread_id": tid}).to_list()
        if not found:
            return
        victim = rng.choice(found)
        if victim.deleted:
            await messages.restore("org-a", victim.message_id)
        else:
            await messages.soft_delete("org-a", victim.message_id)

    steps = [ingest_retry, rest_append, delete_or_restore]
    for _ in range(6):
        await asyncio.gather(*(rng.choice(steps)() for _ in range(3)))
    await assert_rollups_match_recount("org-a", tid)


@pytest.mark.parametrize("seed", range(4))
async def test_any_interleaving_of_doors_matches_a_recount(seed, client, make_key):
    headers = await make_key("org-a", "ingest")
    await make_user("org-a", "u1")
    await _interleave(seed, client, headers)


async def test_soft_delete_and_restore_keep_counters_in_step():
    thread = await make_thread("org-a", "u1", "t-del")
    made = [
        await messages.append_message(
            "org-a",
            thread.thread_id,
            role="user",
            content=f"m{i}",
            ai_metadata={"total_tokens": 5, "response_ms": 2},
        )
        for i in range(4)
    ]
    await messages.soft_delete("org-a", made[1].message_id)
    again = await messages.soft_delete("org-a", made[1].message_id)  # idempotent
    assert again.deleted
    after = await threads.get_thread("org-a", thread.thread_id)
    assert (after.message_count, after.next_seq, after.total_tokens) == (3, 4, 15)
    day = await analytics.summary("org-a", day_start(utcnow()), utcnow())
    assert day.messages == 3 and day.tokens_total == 15
    listed = await messages.list_messages("org-a", thread.thread_id)
    assert [m.seq for m in listed.items] == [0, 2, 3]
    await messages.restore("org-a", made[1].message_id)
    await assert_rollups_match_recount("org-a", thread.thread_id)
    restored = await threads.get_thread("org-a", thread.thread_id)
    assert restored.message_count == 4
