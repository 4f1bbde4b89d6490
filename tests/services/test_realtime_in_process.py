"""The embedded default's real-time state (no `REDIS_URL`): the in-process store answers the
same commands as Redis, so presence, typing, processing, rate limits and the live tail's
stream, replay and fan-out work in one process without Redis."""

from __future__ import annotations

import asyncio

import pytest

from chatadmin.admin.realtime import snapshot
from chatadmin.exceptions import InvalidTransition
from chatadmin.realtime import events, fanout, keys, state
from chatadmin.realtime.guard import Realtime
from chatadmin.realtime.ratelimit import RateLimiter
from chatadmin.realtime.store import InProcessStore
from chatadmin.settings import Settings


@pytest.fixture
def hub():
    rt = Realtime(InProcessStore(), "chat:")
    previous = events.install(rt)
    yield rt
    events.install(previous)


async def test_presence_typing_and_processing_expire_like_redis(hub):
    await state.set_presence(hub, "o", "u1", "away", "s1")
    assert (await state.get_presence(hub, "o", "u1"))["status"] == "away"
    assert 0 < await hub.store.ttl(hub.key(keys.presence("o", "u1"))) <= 300
    await state.set_typing(hub, "o", "t1", "u1")
    assert await state.who_is_typing(hub, "o", "t1") == ["u1"]
    assert 0 < await hub.store.ttl(hub.key(keys.typing("o", "t1", "u1"))) <= 5
    await state.move_processing(hub, "o", "t1", "m1", "queued")
    with pytest.raises(InvalidTransition):
        await state.move_processing(hub, "o", "t1", "m1", "completed")
    await state.move_processing(hub, "o", "t1", "m1", "processing")
    await state.move_processing(hub, "o", "t1", "m1", "failed", "boom")
    retried = await state.move_processing(hub, "o", "t1", "m1", "queued")
    assert retried["retry_count"] == 1 and retried["error"] is None


async def test_rate_limits_count_in_process(hub):
    settings = Settings(chatadmin_rate_manager_per_minute=3, _env_file=None)
    limiter = RateLimiter(hub, settings)
    taken = [(await limiter.messages("o", "u1", "manager")).allowed for _ in range(4)]
    assert taken == [1, 1, 1, 0]
    partial = await limiter.messages("o", "u2", "manager", 5)
    assert partial.allowed == 3 and partial.remaining == 0


async def test_the_stream_replays_and_fans_out_in_process(hub):
    await events.publish("o", "t1", "message.created", {"seq": 0})
    first = await events.last_id(hub, "o", "t1")
    await events.publish("o", "t1", "message.created", {"seq": 1})
    missed = await events.replay(hub, "o", "t1", first)
    assert [e.data["seq"] for e in missed] == [1]
    assert await events.replay(hub, "o", "t1", "1-0") is None  # older than an hour: reset
    after = await events.last_id(hub, "o", "t1")
    q1, _ = await fanout.of(hub).subscribe("o", "t1", after, 200)
    q2, _ = await fanout.of(hub).subscribe("o", "t1", after, 200)
    await asyncio.sleep(0.01)  # the reader is blocked on the stream now
    await events.publish("o", "t1", "typing", {"user_id": "u1"})
    got = [await asyncio.wait_for(q.get(), 2) for q in (q1, q2)]
    assert [e.type for e in got] == ["typing", "typing"] and got[0].id == got[1].id
    for q in (q1, q2):
        fanout.of(hub).unsubscribe("o", "t1", q)


async def test_the_admin_realtime_snapshot_reads_the_in_process_store(hub):
    await state.set_presence(hub, "o", "u1", "busy", "s1")
    await state.set_presence(hub, "p", "u9", "online")
    await events.publish("o", "t1", "message.created", {"seq": 0})
    await hub.store.sadd(hub.key(keys.room("o", "t1")), "c1")
    seen = await snapshot(hub, "o")  # an admin scoped to org "o"
    assert [(x["session"], x["user"]) for x in seen["sessions"]] == [("s1", "u1")]
    assert [(x["user"], x["status"]) for x in seen["presence"]] == [("u1", "busy")]
    assert seen["rooms"] == [{"org": "o", "thread": "t1", "listeners": 1, "participants": []}]
    assert seen["queues"] == [{"org": "o", "thread": "t1", "events": 1}]
    everyone = await snapshot(hub, None)
    assert {x["user"] for x in everyone["presence"]} == {"u1", "u9"}


async def test_the_in_process_streams_keep_the_newest_entries_within_their_bound():
    store = InProcessStore(stream_entries=5)

    async def add(key: str, n: str, minid: str | None = None) -> str:
        return (await store.xadd(key, {"n": n}, minid=minid)).decode()

    for n in ("a0", "a1", "a2", "a3", "b0"):
        await add(f"q:{n[0]}", n)
    await add("q:b", "b2", minid=await add("q:b", "b1"))  # b0 trimmed by its stream: a0, a1 go
    for n in ("c0", "c1", "c2", "c3"):  # a2, a3 go (and their stream), b0 was gone, b1 goes
        await add("q:c", n)
    assert sorted(await store.keys("q:*")) == [b"q:b", b"q:c"]
    kept = {k: [f[b"n"].decode() for _, f in await store.xrange(k)] for k in ("q:b", "q:c")}
    assert kept == {"q:b": ["b2"], "q:c": ["c0", "c1", "c2", "c3"]}


async def test_a_replay_past_what_the_bound_dropped_tells_the_client_to_reload():
    hub = Realtime(InProcessStore(stream_entries=2), "chat:")
    previous = events.install(hub)
    try:
        await events.publish("o", "t1", "message.created", {"seq": 0})
        seen = await events.last_id(hub, "o", "t1")
        await events.publish("o", "t1", "message.created", {"seq": 1})
        assert [e.data["seq"] for e in await events.replay(hub, "o", "t1", seen)] == [1]
        for n in range(2):  # two events elsewhere push both of t1's out
            await events.publish("o", "t2", "message.created", {"seq": n})
        assert await events.replay(hub, "o", "t1", seen) is None
        newest = await events.last_id(hub, "o", "t2")
        assert await events.replay(hub, "o", "t2", newest) == []
    finally:
        events.install(previous)
