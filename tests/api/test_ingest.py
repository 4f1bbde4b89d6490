"""POST /api/v1/ingest: idempotent batches with per-event results."""

import pytest

from chatadmin.models import ApiKey, AuditLog, Message, Thread, User
from chatadmin.services import analytics

pytestmark = pytest.mark.usefixtures("database")


def batch(*events):
    return {"events": [{"type": t, "id": i, "data": d} for t, i, d in events]}


async def test_batch_creates_then_replay_is_unchanged_then_update(client, make_key):
    h = await make_key("org-a", "ingest")
    body = batch(
        ("user", "u1", {"email": "a@x.example", "username": "ann"}),
        ("message", "m1", {"thread_id": "t1", "role": "user", "content": "hi", "user_id": "u1"}),
        ("thread", "t1", {"user_id": "u1", "title": "First"}),
        ("message", "m2", {"thread_id": "t1", "role": "assistant", "content": "hello",
                           "ai_metadata": {"model": "m", "total_tokens": 7, "response_ms": 40}}),
    )  # fmt: skip
    r = await client.post("/api/v1/ingest", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == ["created"] * 4
    assert [x["index"] for x in r.json()["results"]] == [0, 1, 2, 3]
    thread = await Thread.find_one({"org_id": "org-a", "thread_id": "t1"})
    assert thread.title == "First" and thread.message_count == 2 and thread.total_tokens == 7
    msgs = await Message.find({"org_id": "org-a", "thread_id": "t1"}).sort("seq").to_list()
    assert [(m.message_id, m.seq) for m in msgs] == [("m1", 0), ("m2", 1)]
    assert msgs[1].user_id == "u1"  # inherited from the thread
    user = await User.find_one({"org_id": "org-a", "user_id": "u1"})
    assert user.message_count == 2 and user.thread_count == 1  # m2 belongs to u1's thread

    again = await client.post("/api/v1/ingest", json=body, headers=h)
    assert again.status_code == 200
    assert [x["status"] for x in again.json()["results"]] == ["unchanged"] * 4
    assert await Message.find({"org_id": "org-a"}).count() == 2
    assert (await Thread.find_one({"thread_id": "t1"})).message_count == 2

    changed = batch(("thread", "t1", {"user_id": "u1", "title": "Renamed"}))
    r3 = await client.post("/api/v1/ingest", json=changed, headers=h)
    assert r3.json()["results"][0]["status"] == "updated"
    thread = await Thread.find_one({"thread_id": "t1"})
    assert thread.title == "Renamed" and thread.message_count == 2
    day = await analytics.summary("org-a", msgs[0].created_at, msgs[0].created_at)
    assert day.messages == 2 and day.threads == 1 and day.tokens_total == 7
    audits = await AuditLog.find({"org_id": "org-a", "resource_id": "t1"}).to_list()
    assert {a.action for a in audits} == {"thread_created", "thread_updated"}


async def test_message_to_unknown_thread_creates_it(client, make_key):
    h = await make_key()
    body = batch(("message", "m1", {"thread_id": "new-t", "role": "user", "user_id": "u9",
                                    "content": "What is the volatility of AAPL?"}))  # fmt: skip
    r = await client.post("/api/v1/ingest", json=body, headers=h)
    assert r.status_code == 200, r.text
    thread = await Thread.find_one({"org_id": "org-a", "thread_id": "new-t"})
    assert thread.user_id == "u9" and thread.title.startswith("What is the volatility")
    assert thread.message_count == 1


async def test_one_bad_event_does_not_sink_the_others(client, make_key):
    h = await make_key()
    body = batch(
        ("thread", "t1", {"user_id": "u1"}),
        ("message", "bad", {"thread_id": "t1", "role": "robot"}),
        ("message", "m1", {"thread_id": "t1", "role": "user", "content": "ok"}),
        ("message", "orphan", {"thread_id": "nope", "role": "user", "content": "x"}),
        ("feedback", "missing", {"is_helpful": True}),
    )
    r = await client.post("/api/v1/ingest", json=body, headers=h)
    assert r.status_code == 207
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["created", "error", "created", "error", "error"]
    assert results[1]["error"]["code"] == "invalid"
    assert results[1]["error"]["details"][0]["field"] == "data.role"
    assert results[3]["error"]["code"] == "invalid" and "user_id" in results[3]["error"]["message"]
    assert results[4]["error"]["code"] == "not_found"
    assert await Message.find({"org_id": "org-a"}).count() == 1


async def test_batch_limits_and_auth(client, make_key, settings):
    read_only = await make_key("org-a", "read")
    r = await client.post("/api/v1/ingest", json=batch(), headers=read_only)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = await client.post("/api/v1/ingest", json=batch())
    assert r.status_code == 401
    h = await make_key()
    too_many = {"events": [{"type": "user", "id": f"u{i}", "data": {}}
                           for i in range(settings.chatadmin_max_batch + 1)]}  # fmt: skip
    r = await client.post("/api/v1/ingest", json=too_many, headers=h)
    assert r.status_code == 413
    assert await User.find({}).count() == 0


async def test_an_event_of_an_unknown_type_gets_its_own_error(client, make_key):
    """A newer client's event type never sinks the batch's good events."""
    h = await make_key("org-a", "ingest")
    body = {
        "events": [
            {"type": "user", "id": "u-new", "data": {"username": "new"}},
            {"type": "reaction", "id": "r1", "data": {"emoji": "+1"}},
            {"type": "thread", "id": "t-new", "data": {"user_id": "u-new"}},
        ]
    }
    r = await client.post("/api/v1/ingest", json=body, headers=h)
    assert r.status_code == 207, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["created", "error", "created"]
    assert results[1]["error"]["code"] == "unknown_type" and results[1]["type"] == "reaction"
    read = await make_key("org-a", "read")
    assert (await client.get("/api/v1/threads/t-new", headers=read)).status_code == 200
    # an unknown type that names one of our collections writes nothing there
    forged = {"events": [{"type": "api_key", "id": "k1", "data": {"scopes": ["admin"]}}]}
    r = await client.post("/api/v1/ingest", json=forged, headers=h)
    assert r.status_code == 207 and r.json()["results"][0]["error"]["code"] == "unknown_type"
    assert await ApiKey.find({"key_id": "k1"}).count() == 0
