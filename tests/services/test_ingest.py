"""The ingest service itself (no HTTP): a batch applied through the same service functions as
the REST API, its per-event outcomes, its side effects and its audit entries."""

from __future__ import annotations

import pytest

from chatadmin.clock import utcnow
from chatadmin.models import AuditLog, Thread
from chatadmin.services import analytics, audit, messages
from chatadmin.services.ingest import Batch, EventIn, ingest
from chatadmin.services.messages import claim_of
from tests.factories import make_user
from tests.rollups import assert_rollups_match_recount

pytestmark = pytest.mark.usefixtures("database")

ACTOR = audit.Actor("api_key", "key-1", via="ingest")


def events(*specs) -> list[EventIn]:
    return [EventIn(type=t, id=i, data=d) for t, i, d in specs]


async def run(*specs, org: str = "org-a", **options):
    results = await ingest(Batch(org, ACTOR, **options), events(*specs))
    return [(r.status, r.error.code if r.error else None) for r in results]


def said(text: str, tokens: int, **extra) -> dict:
    return {"thread_id": "t1", "role": "assistant", "content": text,
            "ai_metadata": {"total_tokens": tokens, "response_ms": 10}, **extra}  # fmt: skip


async def test_a_batch_creates_then_a_replay_writes_nothing():
    await make_user("org-a", "u1")
    batch = [
        ("thread", "t1", {"user_id": "u1", "title": "One"}),
        ("message", "m1", said("first", 5)),
        ("message", "m2", said("second", 7)),
        ("feedback", "m2", {"rating": 4}),
    ]
    assert await run(*batch) == [("created", None)] * 4
    assert await run(*batch) == [("unchanged", None)] * 4
    await assert_rollups_match_recount("org-a", "t1")
    day = await analytics.summary("org-a", utcnow(), utcnow())
    assert (day.messages, day.threads, day.feedback_count, day.rating_sum) == (2, 1, 1, 4)


async def test_a_message_update_moves_the_thread_and_day_counters():
    await make_user("org-a", "u1")
    await run(("thread", "t1", {"user_id": "u1"}), ("message", "m1", said("first", 5)))
    assert await run(("message", "m1", said("first, corrected", 50))) == [("updated", None)]
    thread = await Thread.find_one({"org_id": "org-a", "thread_id": "t1"})
    assert (thread.message_count, thread.total_tokens) == (1, 50)
    day = await analytics.summary("org-a", utcnow(), utcnow())
    assert (day.messages, day.tokens_total) == (1, 50)
    await assert_rollups_match_recount("org-a", "t1")


async def test_a_message_update_of_a_deleted_message_leaves_the_counters():
    await make_user("org-a", "u1")
    await run(("thread", "t1", {"user_id": "u1"}), ("message", "m1", said("first", 5)))
    await messages.soft_delete("org-a", "m1")
    assert await run(("message", "m1", said("first", 9))) == [("updated", None)]
    thread = await Thread.find_one({"thread_id": "t1"})
    assert (thread.message_count, thread.total_tokens) == (0, 0)
    await assert_rollups_match_recount("org-a", "t1")


async def test_thread_status_through_ingest_stamps_its_time():
    await make_user("org-a", "u1")
    await run(("thread", "t1", {"user_id": "u1"}))
    assert await run(("thread", "t1", {"user_id": "u1", "status": "archived"})) == [
        ("updated", None)
    ]
    thread = await Thread.find_one({"thread_id": "t1"})
    assert thread.status == "archived" and thread.archived_at_ms > 0
    await run(("thread", "t1", {"user_id": "u1", "status": "active"}))
    assert (await Thread.find_one({"thread_id": "t1"})).archived_at_ms == 0


async def test_a_claim_left_by_a_writer_that_died_is_taken_over(monkeypatch):
    monkeypatch.setattr(messages, "CLAIM_WAIT_S", 0.2)
    await make_user("org-a", "u1")
    await run(("thread", "t1", {"user_id": "u1"}), ("message", "m1", said("first", 5)))
    # a writer reserved m2's seq (its claim is there) and died before its insert
    await Thread.get_pymongo_collection().update_one(
        {"org_id": "org-a", "thread_id": "t1"}, {"$push": {"recent_claims": claim_of("m2")}}
    )
    assert await run(("message", "m2", said("second", 7))) == [("created", None)]
    await assert_rollups_match_recount("org-a", "t1")


async def test_messages_to_a_deleted_thread_are_refused_and_counted_nowhere():
    await make_user("org-a", "u1")
    await run(("thread", "t1", {"user_id": "u1"}), ("message", "m1", said("first", 5)))
    await Thread.get_pymongo_collection().update_one(
        {"thread_id": "t1"}, {"$set": {"status": "deleted"}}
    )
    assert await run(("message", "m2", said("late", 3))) == [("error", "not_found")]
    thread = await Thread.find_one({"thread_id": "t1"})
    assert (thread.message_count, thread.next_seq) == (1, 1)


async def test_the_batch_is_audited_with_its_actor_and_the_model_vocabulary():
    await make_user("org-a", "u1")
    await run(
        ("thread", "t1", {"user_id": "u1"}),
        ("message", "m1", said("first", 5)),
        ("feedback", "m1", {"is_helpful": True}),
        ("context", "c1", {"key_points": ["x"]}),
    )
    entries = await AuditLog.find({"org_id": "org-a"}).to_list()
    assert {(e.action, e.resource_type) for e in entries} == {
        ("thread_created", "thread"),
        ("messages_created", "message"),
        ("feedback_created", "message"),
        ("context_created", "context"),
    }
    assert {(e.actor_type, e.actor_id, e.metadata["via"]) for e in entries} == {
        ("api_key", "key-1", "ingest")
    }
