"""Real-time state on a real redis-server: presence, typing and processing with seed 004's
keys and TTLs, and the live tail over a real socket (uvicorn), fed by every write path and
resumable with Last-Event-ID; and what answers when Redis is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import uvicorn

from chatadmin.app import create_app
from chatadmin.embedded import free_port
from chatadmin.models import Connection
from chatadmin.realtime import fanout, keys
from chatadmin.services import messages
from tests.factories import make_thread

pytestmark = pytest.mark.usefixtures("database")


@pytest_asyncio.fixture(loop_scope="session")
async def raw_redis(settings):
    client = aioredis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def live(settings, database):
    """The app behind uvicorn on a free port (real sockets), with a short SSE heartbeat."""
    app = create_app(settings.model_copy(update={"chatadmin_sse_heartbeat_s": 0.3}), database)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.02)
    await app.state.redis.flushdb()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        http.served_app = app  # the tests look at its fan-out
        yield http
    server.should_exit = True
    await task


async def test_presence_and_its_session_have_seed_004_ttls(client, make_key, raw_redis):
    h = await make_key("org-a", "ingest", "read")
    r = await client.put(
        "/api/v1/presence/u1", json={"status": "busy", "session_id": "s1"}, headers=h
    )
    assert r.status_code == 200, r.text
    got = (await client.get("/api/v1/presence/u1", headers=h)).json()
    assert (got["status"], got["session_id"]) == ("busy", "s1") and got["last_seen_ms"] > 0
    value = (await raw_redis.get("chat:" + keys.presence("org-a", "u1"))).decode()
    assert value.startswith("s1|busy|")
    assert 290 < await raw_redis.ttl("chat:" + keys.presence("org-a", "u1")) <= 300
    session = await raw_redis.hgetall("chat:" + keys.session("s1"))
    assert session[b"userId"] == b"u1" and session[b"presenceStatus"] == b"busy"
    assert 86000 < await raw_redis.ttl("chat:" + keys.session("s1")) <= 86400
    nobody = (await client.get("/api/v1/presence/u2", headers=h)).json()
    assert nobody["status"] == "offline"


async def test_typing_lasts_five_seconds_and_stays_in_its_org(client, make_key, raw_redis):
    h = await make_key("org-a", "ingest", "read")
    other = await make_key("org-b", "ingest", "read")
    await make_thread("org-a", "u1", "t1")
    r = await client.post("/api/v1/threads/t1/typing", json={"user_id": "u1"}, headers=h)
    assert r.status_code == 200 and r.json()["typing"] == ["u1"]
    assert 0 < await raw_redis.ttl("chat:" + keys.typing("org-a", "t1", "u1")) <= 5
    assert (await client.get("/api/v1/threads/t1/typing", headers=other)).status_code == 404


async def test_processing_moves_through_its_machine(client, make_key, raw_redis):
    h = await make_key("org-a", "ingest", "read")
    await make_thread("org-a", "u1", "t1")
    url = "/api/v1/threads/t1/messages/m1/processing"
    assert (await client.get(url, headers=h)).json()["status"] == "none"
    refused = await client.put(url, json={"status": "completed"}, headers=h)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "invalid_transition"
    for status in ("queued", "processing", "failed", "queued", "processing", "completed"):
        r = await client.put(url, json={"status": status, "error": "boom"}, headers=h)
        assert r.status_code == 200, (status, r.text)
    done = r.json()
    assert done["status"] == "completed" and done["retry_count"] == 1
    assert done["queued_at_ms"] <= done["started_at_ms"] <= done["completed_at_ms"]
    assert 890 < await raw_redis.ttl("chat:" + keys.processing("org-a", "t1", "m1")) <= 900
    again = await client.put(url, json={"status": "processing"}, headers=h)
    assert again.status_code == 409


class Tail:
    """The events of an open SSE response, read as they come."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def take(self, count: int, wait_s: float = 5.0) -> list[dict]:
        """The next `count` events (id, event, data); TimeoutError when they do not come."""
        found: list[dict] = []
        current: dict = {}

        async def read():
            async for line in self.lines:
                if not line:
                    if "event" in current:
                        found.append(dict(current))
                        if len(found) == count:
                            return
                    current.clear()
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    current[name] = json.loads(value) if name == "data" else value

        await asyncio.wait_for(read(), wait_s)
        return found


async def test_the_live_tail_carries_every_write_path_and_resumes(live, make_key, raw_redis):
    h = await make_key("org-a", "ingest", "read")
    await make_thread("org-a", "u1", "t1")
    url = "/api/v1/threads/t1/events?user_id=watcher"
    async with live.stream("GET", url, headers=h) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert await raw_redis.smembers("chat:" + keys.participants("org-a", "t1")) == {b"watcher"}
        rest = await live.post(
            "/api/v1/threads/t1/messages", json={"role": "user", "content": "via rest"}, headers=h
        )
        assert rest.status_code == 201
        ingest = {"events": [{"type": "message", "id": "m-ing", "data": {
            "thread_id": "t1", "role": "assistant", "content": "via ingest"}}]}  # fmt: skip
        assert (await live.post("/api/v1/ingest", json=ingest, headers=h)).status_code == 200
        fb = await live.post("/api/v1/messages/m-ing/feedback", json={"rating": 5}, headers=h)
        assert fb.status_code == 200
        await messages.edit_message("org-a", "m-ing", text="edited by an admin")
        got = await Tail(stream).take(4)
    assert [(e["event"], e["data"]["message_id"]) for e in got] == [
        ("message.created", rest.json()["message_id"]),
        ("message.created", "m-ing"),
        ("message.updated", "m-ing"),
        ("message.updated", "m-ing"),
    ]
    assert got[2]["data"]["feedback"]["rating"] == 5
    assert got[3]["data"]["text"] == "edited by an admin"
    stream = "chat:" + keys.queue("org-a", "t1")  # seed 004's one-hour message queue
    left = await raw_redis.pttl(stream)
    assert 3590 < left / 1000 <= 3600, left
    assert await raw_redis.xlen(stream) == 4
    await asyncio.sleep(0.2)  # the server notices the disconnect at its next heartbeat
    for _ in range(50):
        gone = await Connection.find_one({"org_id": "org-a", "user_id": "watcher"})
        if gone.status == "disconnected":
            break
        await asyncio.sleep(0.1)
    assert gone.status == "disconnected" and gone.disconnected_at_ms > 0
    assert not await raw_redis.exists("chat:" + keys.participants("org-a", "t1"))

    # a client that saw only the first event gets the other three, in order, once
    resume = {**h, "Last-Event-ID": got[0]["id"]}
    async with live.stream("GET", url, headers=resume) as stream:
        tail = Tail(stream)
        again = await tail.take(3)
        with contextlib.suppress(TimeoutError):
            extra = await tail.take(1, wait_s=0.8)
            raise AssertionError(f"an event came twice: {extra}")
    assert [e["id"] for e in again] == [e["id"] for e in got[1:]]

    async with live.stream("GET", url, headers={**h, "Last-Event-ID": "1-0"}) as stream:
        (reset,) = await Tail(stream).take(1)
    assert reset["event"] == "reset"


async def test_without_redis_realtime_answers_503_and_the_rest_works(settings, database, make_key):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(settings.model_copy(update={"redis_url": dead}), database)
    async with app.router.lifespan_context(app):
        h = await make_key("org-a", "ingest", "read")
        await make_thread("org-a", "u1", "t1")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            presence = await http.get("/api/v1/presence/u1", headers=h)
            typing = await http.post("/api/v1/threads/t1/typing", json={"user_id": "u1"},
                                     headers=h)  # fmt: skip
            tail = await http.get("/api/v1/threads/t1/events", headers=h)
            listed = await http.get("/api/v1/threads", headers=h)
            appended = await http.post(
                "/api/v1/threads/t1/messages", json={"role": "user", "content": "x"}, headers=h
            )
    for r in (presence, typing, tail):
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable", r.text
    assert listed.status_code == 200 and appended.status_code == 201


async def test_thread_context_is_cached_until_the_thread_changes(client, make_key, raw_redis):
    h = await make_key("org-a", "ingest", "read")
    await make_thread("org-a", "u1", "t1")
    url = "/api/v1/threads/t1/context"
    first = await client.get(url, headers=h)
    second = await client.get(url, headers=h)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("miss", "hit")
    assert first.json() == second.json()
    assert 1790 < await raw_redis.ttl("chat:" + keys.context("org-a", "t1")) <= 1800
    await client.post("/api/v1/threads/t1/messages", json={"role": "user", "content": "new"},
                      headers=h)  # fmt: skip
    third = await client.get(url, headers=h)
    assert third.headers["X-Cache"] == "miss"
    assert [m["text"] for m in third.json()["recent_messages"]] == ["new"]
    await client.post("/api/v1/threads/t1/name", json={"name": "Renamed"}, headers=h)
    fourth = await client.get(url, headers=h)
    assert fourth.headers["X-Cache"] == "miss" and fourth.json()["thread"]["title"] == "Renamed"


async def test_cache_lookup_reads_redis_before_mongodb(client, make_key, raw_redis):
    h = await make_key("org-a", "ingest", "read")
    question = {"question": "AAPL volatility", "parameters": {"days": 30}}
    stored = await client.put("/api/v1/cache", json={**question, "result": {"v": 1}}, headers=h)
    assert stored.status_code in (200, 201), stored.text
    key = stored.json()["cache_key"]
    first = (await client.post("/api/v1/cache/lookup", json=question, headers=h)).json()
    redis_key = "chat:" + keys.ai_cache(f"org-a:{key}")
    assert 3590 < await raw_redis.ttl(redis_key) <= 3600  # filled on the MongoDB hit
    second = (await client.post("/api/v1/cache/lookup", json=question, headers=h)).json()
    assert (first["hit_count"], second["hit_count"]) == (1, 2)
    assert second["result"] == {"v": 1}
    await client.put("/api/v1/cache", json={**question, "result": {"v": 2}}, headers=h)
    assert not await raw_redis.exists(redis_key)  # a new result drops the Redis copy
    third = (await client.post("/api/v1/cache/lookup", json=question, headers=h)).json()
    assert third["result"] == {"v": 2}


async def test_one_reader_per_conversation_serves_every_listener_of_the_process(live, make_key):
    h = await make_key("org-a", "ingest", "read")
    await make_thread("org-a", "u1", "t1")
    url = "/api/v1/threads/t1/events"

    async def say(text):
        body = {"role": "user", "content": text}
        r = await live.post("/api/v1/threads/t1/messages", json=body, headers=h)
        assert r.status_code == 201, r.text

    async with live.stream("GET", url, headers=h) as first:
        early = Tail(first)
        await say("one")
        (one,) = await early.take(1)
        async with live.stream("GET", url, headers=h) as second:
            late = Tail(second)
            await say("two")
            await say("three")
            got_early = await early.take(2)
            got_late = await late.take(2)
            hub = fanout.of(live.served_app.state.realtime)
            assert list(hub.readers) == [("org-a", "t1")]  # one XREAD for both listeners
            assert len(hub.readers[("org-a", "t1")].queues) == 2
    texts = [e["data"]["text"] for e in [one, *got_early]]
    assert texts == ["one", "two", "three"]
    assert [e["data"]["text"] for e in got_late] == ["two", "three"]
