"""Writes that die half-way: the journal record a write leaves behind names what its side
effects touch, and the repair recounts it (day buckets, users' counters) once the org has no
write in flight; a writer that died between reserving seqs and storing its messages leaves
seqs that a retry of the same messages fills in, without a gap or a second count."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chatadmin.clock import day_start, now_ms, to_ms
from chatadmin.models import DailyAnalytics, Message, Thread, User, WriteJournal
from chatadmin.services import analytics, audit, messages, repair, rollup
from chatadmin.services.effects import Effects
from chatadmin.services.ingest import Batch, EventIn, ingest
from tests.factories import make_user

pytestmark = pytest.mark.usefixtures("database")

ACTOR = audit.Actor("api_key", "key-1", via="ingest")


class Died(Exception):
    """The worker was killed here."""


def said(mid: str, thread: str = "t1", tokens: int = 5) -> EventIn:
    data = {"thread_id": thread, "user_id": "u1", "role": "assistant", "content": mid,
            "ai_metadata": {"total_tokens": tokens, "response_ms": 10}}  # fmt: skip
    return EventIn(type="message", id=mid, data=data)


async def send(*events: EventIn) -> list[str]:
    return [r.status for r in await ingest(Batch("org-a", ACTOR), list(events))]


async def journal() -> list[WriteJournal]:
    return await WriteJournal.find({}).to_list()


async def test_a_write_that_ends_leaves_no_journal_record():
    await make_user("org-a", "u1")
    assert await send(said("m1"), said("m2", "t2")) == ["created", "created"]
    await messages.append_message("org-a", "t1", role="user", content="hi", user_id="u1")
    assert await journal() == []


async def test_a_journal_record_grows_to_name_everything_its_write_touches():
    effects = Effects("org-a")
    later, earlier = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 1, 9, tzinfo=UTC)
    await effects.begin(["u2", None], [later], ["t2"])
    await effects.begin(["u1", "u2"], [earlier], ["t3", "t1", "t2"])
    await effects.begin(["u1"], [later], ["t1"])  # nothing new: no write
    [record] = await journal()
    assert record.users == ["u1", "u2"] and record.threads == ["t1", "t2", "t3"]
    assert record.first_day_ms == to_ms(day_start(earlier))
    await effects.flush()
    assert await journal() == []


async def test_counters_a_dead_write_missed_are_recounted_by_the_repair(monkeypatch):
    await make_user("org-a", "u1")
    await send(said("m1"))
    real = analytics.record_batch

    async def dies_after_the_buckets(org_id, batch):
        await real(org_id, batch)
        raise Died  # the buckets moved, the users' counters did not

    monkeypatch.setattr(analytics, "record_batch", dies_after_the_buckets)
    with pytest.raises(Died):
        await send(said("m2"), said("m3", "t2"))
    monkeypatch.setattr(analytics, "record_batch", real)
    [left] = await journal()
    assert left.users == ["u1"] and left.first_day_ms > 0
    user = await User.find_one({"org_id": "org-a", "user_id": "u1"})
    assert user.message_count == 1  # m2 and m3 are stored, but not counted on the user

    assert await repair.repair_stale(stale_s=60) == []  # too fresh: it may still be running
    [done] = await repair.repair_stale(stale_s=0)
    assert done.org_id == "org-a" and done.users == ["u1"] and not done.waiting
    assert await journal() == []
    user = await User.find_one({"org_id": "org-a", "user_id": "u1"})
    assert (user.message_count, user.thread_count) == (3, 2)
    assert (await rollup.rebuild("org-a", check=True)).ok
    # A replay of the batch finds everything in place and changes nothing.
    assert await send(said("m2"), said("m3", "t2")) == ["unchanged", "unchanged"]
    assert (await User.find_one({"org_id": "org-a", "user_id": "u1"})).message_count == 3


async def test_the_repair_waits_while_a_write_of_the_org_is_in_flight(monkeypatch):
    await make_user("org-a", "u1")
    await send(said("m1"))
    coll = WriteJournal.get_pymongo_collection()
    stale = WriteJournal(org_id="org-a", users=["u1"], first_day_ms=0).stamped()
    stale.created_at_ms = now_ms() - 600_000
    fresh = WriteJournal(org_id="org-a", users=["u2"]).stamped()
    await coll.insert_many([stale.storage_fields(), fresh.storage_fields()])
    [waiting] = await repair.repair_stale(stale_s=60)
    assert waiting.waiting == "writes of the org are in flight"
    assert len(await journal()) == 2
    await coll.delete_one({"_id": fresh.id})
    [done] = await repair.repair_stale(stale_s=60)
    assert not done.waiting and await journal() == []


async def test_a_rebuild_that_finds_a_write_begun_meanwhile_writes_nothing():
    await make_user("org-a", "u1")
    await send(said("m1"))
    coll = DailyAnalytics.get_pymongo_collection()
    await coll.update_many({"org_id": "org-a"}, {"$inc": {"messages": 5}})  # drifted
    before = await coll.find({"org_id": "org-a"}).sort("_id").to_list()

    async def busy() -> bool:
        return False

    report = await rollup.rebuild("org-a", quiet=busy)
    assert report.interrupted and not report.ok
    assert await coll.find({"org_id": "org-a"}).sort("_id").to_list() == before


async def test_seqs_a_dead_writer_reserved_are_filled_by_the_retry_without_a_gap(monkeypatch):
    monkeypatch.setattr(messages, "CLAIM_WAIT_S", 0.2)
    await make_user("org-a", "u1")
    await send(said("m1"), said("x1", "t2"))

    async def dies_before_storing(org_id, ready, outcome, **kw):
        raise Died  # the seqs are reserved and claimed, nothing is stored

    real = messages._store
    monkeypatch.setattr(messages, "_store", dies_before_storing)
    with pytest.raises(Died):
        await send(said("m2"), said("m3"), said("x2", "t2"))
    monkeypatch.setattr(messages, "_store", real)
    assert await send(said("m4")) == ["created"]  # another message takes the next seq
    assert await send(said("m2"), said("m3"), said("x2", "t2")) == ["created"] * 3
    assert (await rollup.rebuild("org-a", check=True)).ok
    for tid, count in (("t1", 4), ("t2", 2)):
        stored = await Message.find({"org_id": "org-a", "thread_id": tid}).to_list()
        assert sorted(m.seq for m in stored) == list(range(count))
        thread = await Thread.find_one({"thread_id": tid})
        assert (thread.message_count, thread.next_seq, thread.total_tokens) == (
            count,
            count,
            5 * count,
        )
    assert (await User.find_one({"org_id": "org-a", "user_id": "u1"})).message_count == 6
    stored = {m.message_id: m.seq for m in await Message.find({"thread_id": "t1"}).to_list()}
    assert stored == {"m1": 0, "m2": 1, "m3": 2, "m4": 3}  # the order they were sent in
    thread = await Thread.find_one({"thread_id": "t1"})
    assert (thread.message_count, thread.next_seq) == (4, 4)


async def test_a_slow_writer_whose_seqs_a_retry_filled_gives_nothing_back(monkeypatch):
    """A live writer slower than the claim wait: the retry stores its messages at the seqs it
    reserved; when the slow writer's insert finally runs, it finds them there and must not give
    those seqs (or their counters) back."""
    monkeypatch.setattr(messages, "CLAIM_WAIT_S", 0.2)
    await make_user("org-a", "u1")
    await send(said("m1"), said("x1", "t2"))
    slow = [
        messages.build_message("org-a", tid, message_id=mid, role="user", content=mid,
                               user_id="u1", ai_metadata={"total_tokens": 5})
        for mid, tid in (("m2", "t1"), ("m3", "t1"), ("x2", "t2"))
    ]  # fmt: skip
    outcome: dict = {}
    by_thread: dict = {}
    for m in slow:
        by_thread.setdefault(m.thread_id, []).append(m)
    ready, claimed = await messages._reserve_all("org-a", by_thread, outcome)
    assert len(ready) == 3 and not claimed
    assert await send(said("m2"), said("m3"), said("x2", "t2")) == ["created"] * 3  # the retry
    await messages._store("org-a", ready, outcome)  # the slow writer, at last
    assert {outcome[m.message_id].status for m in ready} == {"exists"}
    for tid, count in (("t1", 3), ("t2", 2)):
        thread = await Thread.find_one({"thread_id": tid})
        stored = await Message.find({"org_id": "org-a", "thread_id": tid}).to_list()
        assert sorted(m.seq for m in stored) == list(range(count))
        assert (thread.next_seq, thread.message_count) == (count, count)


async def test_a_gap_and_counts_a_dead_reservation_left_are_closed_by_the_repair(monkeypatch):
    """A dead writer's reservation the retry could no longer find (its claims gone: slid out of
    the window on a busy thread) is reserved again: a gap and a double count, until the
    journal's record of the dead write has the thread recounted and its seqs closed up."""
    monkeypatch.setattr(messages, "CLAIM_WAIT_S", 0.2)
    await make_user("org-a", "u1")
    await send(said("m1"))

    async def dies_before_storing(org_id, ready, outcome, **kw):
        raise Died

    real = messages._store
    monkeypatch.setattr(messages, "_store", dies_before_storing)
    with pytest.raises(Died):
        await send(said("m2"), said("m3"))
    monkeypatch.setattr(messages, "_store", real)
    [left] = await journal()
    assert left.threads == ["t1"]
    threads = Thread.get_pymongo_collection()
    await threads.update_one({"thread_id": "t1"}, {"$set": {"recent_claims": []}})
    assert await send(said("m2"), said("m3"), said("m4")) == ["created"] * 3
    seqs = {m.message_id: m.seq for m in await Message.find({"thread_id": "t1"}).to_list()}
    assert seqs == {"m1": 0, "m2": 3, "m3": 4, "m4": 5}  # 1 and 2 were the dead writer's
    thread = await Thread.find_one({"thread_id": "t1"})
    assert (thread.message_count, thread.total_tokens, thread.next_seq) == (6, 30, 6)

    [done] = await repair.repair_stale(stale_s=0)
    assert (done.threads, done.renumbered, done.waiting) == (["t1"], 3, "")
    seqs = {m.message_id: m.seq for m in await Message.find({"thread_id": "t1"}).to_list()}
    assert seqs == {"m1": 0, "m2": 1, "m3": 2, "m4": 3}
    thread = await Thread.find_one({"thread_id": "t1"})
    assert (thread.message_count, thread.total_tokens, thread.next_seq) == (4, 20, 4)
    assert (await rollup.rebuild("org-a", check=True)).ok
    assert await send(said("m5"), said("m3")) == ["created", "unchanged"]
    seqs = {m.message_id: m.seq for m in await Message.find({"thread_id": "t1"}).to_list()}
    assert seqs["m5"] == 4 and (await Thread.find_one({"thread_id": "t1"})).message_count == 5


async def test_a_thread_written_while_it_is_repaired_is_left_for_a_later_round():
    await make_user("org-a", "u1")
    await send(said("m1"), said("m2"))
    threads = Thread.get_pymongo_collection()
    await threads.update_one({"thread_id": "t1"}, {"$inc": {"message_count": 7}})  # drifted

    async def busy() -> bool:
        return False

    async def a_seq_is_reserved_past_the_check() -> bool:
        await threads.update_one({"thread_id": "t1"}, {"$inc": {"next_seq": 1}})
        return True

    async def quiet() -> bool:
        return True

    done = repair.Repaired("org-a", 1)
    for meanwhile in (busy, a_seq_is_reserved_past_the_check):
        assert not await repair._repair_threads("org-a", ["t1"], meanwhile, done)
        assert (await Thread.find_one({"thread_id": "t1"})).message_count == 9  # untouched
    assert await repair._repair_threads("org-a", ["t1"], quiet, done)
    thread = await Thread.find_one({"thread_id": "t1"})
    assert (thread.message_count, thread.next_seq) == (2, 2)
