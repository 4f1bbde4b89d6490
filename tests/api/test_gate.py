"""The write gate: heavy writes beyond the process's turns wait in the app, then get 503 `busy`;
other requests are not held up, and nothing of a refused write is stored."""

import asyncio

import pytest

from chatadmin.api import ingest as ingest_api
from chatadmin.api.gate import WriteGate
from chatadmin.models import Message
from tests.api.helpers import error

pytestmark = pytest.mark.usefixtures("database")


def message(mid: str, thread: str = "t1") -> dict:
    return {"type": "message", "id": mid, "data": {"thread_id": thread, "role": "user",
                                                    "content": mid, "user_id": "u1"}}  # fmt: skip


async def until(condition, seconds: float = 2.0) -> None:
    """Wait (bounded) until `condition()` holds; the test's assertions say what it expected."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)


async def test_writes_past_the_turns_wait_then_get_busy_and_reads_go_on(app, client, make_key,
                                                                        monkeypatch):  # fmt: skip
    h = await make_key("org-a", "ingest", "read")
    gate = app.state.write_gate = WriteGate(1, 0.3)
    release = asyncio.Event()
    real = ingest_api.ingest

    async def held(state, events):  # the first write holds its turn until released
        await release.wait()
        return await real(state, events)

    monkeypatch.setattr(ingest_api, "ingest", held)
    first = asyncio.create_task(
        client.post("/api/v1/ingest", json={"events": [message("m1")]}, headers=h)
    )
    await until(lambda: gate.active)
    assert gate.status() == {"size": 1, "active": 1, "waiting": 0, "refused": 0}

    busy = await client.post("/api/v1/ingest", json={"events": [message("m2")]}, headers=h)
    err = error(busy, 503, "busy")
    assert busy.headers["Retry-After"] == "1" and "busy" in err["message"]
    append = await client.post(
        "/api/v1/threads/t1/messages", json={"role": "user", "content": "x"}, headers=h
    )
    error(append, 503, "busy")
    broken = await client.post(  # refused for what it is, without waiting for a turn
        "/api/v1/ingest", content=b'{"events": [', headers={**h, "content-type": "application/json"}
    )
    error(broken, 400, "bad_request")
    unknown = await client.post(
        "/api/v1/threads/t1/messages", json={"role": "user", "content": "x", "seq": 3}, headers=h
    )
    error(unknown, 422, "invalid")
    listed = await client.get("/api/v1/threads", headers=h)  # a read: never gated
    assert listed.status_code == 200, listed.text
    assert gate.status()["refused"] == 2

    release.set()
    done = await first
    assert done.status_code == 200, done.text
    after = await client.post("/api/v1/ingest", json={"events": [message("m3")]}, headers=h)
    assert after.status_code == 200, after.text
    stored = await Message.find({"org_id": "org-a"}).sort("seq").to_list()
    assert [m.message_id for m in stored] == ["m1", "m3"]  # m2 and the append: refused whole
    assert gate.status() == {"size": 1, "active": 0, "waiting": 0, "refused": 2}
    ready = await client.get("/readyz")
    assert ready.json()["writes"] == gate.status()


async def test_a_waiting_write_gets_the_turn_a_finished_one_gives_back(app, client, make_key,
                                                                      monkeypatch):  # fmt: skip
    h = await make_key("org-a", "ingest")
    gate = app.state.write_gate = WriteGate(1, 5.0)
    release = asyncio.Event()
    real = ingest_api.ingest
    calls = []

    async def held(state, events):
        calls.append(events[0].id)
        if len(calls) == 1:
            await release.wait()
        return await real(state, events)

    monkeypatch.setattr(ingest_api, "ingest", held)
    post = client.post
    first = asyncio.create_task(post("/api/v1/ingest", json={"events": [message("m1")]}, headers=h))
    await until(lambda: gate.active)
    second = asyncio.create_task(
        post("/api/v1/ingest", json={"events": [message("m2")]}, headers=h)
    )
    await until(lambda: gate.waiting)
    assert (gate.active, gate.waiting, calls) == (1, 1, ["m1"])  # m2 waits outside the write
    release.set()
    assert (await first).status_code == 200 and (await second).status_code == 200
    assert calls == ["m1", "m2"] and gate.status()["refused"] == 0
