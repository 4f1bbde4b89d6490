"""Rate limits on a real redis-server: per user by role on every message write (REST and
ingest), per API key on every request, windows with seed 004's keys and TTLs, and fail-open
when Redis is unreachable."""

from __future__ import annotations

import logging

import httpx
import pytest
import redis.asyncio as aioredis

from chatadmin.app import create_app
from chatadmin.embedded import free_port
from chatadmin.models import Message
from chatadmin.realtime import keys
from tests.factories import make_thread

pytestmark = pytest.mark.usefixtures("database")


async def _append(client, headers, thread_id="t1", **body):
    body = {"role": "user", "content": "hi", **body}
    return await client.post(f"/api/v1/threads/{thread_id}/messages", json=body, headers=headers)


async def test_a_managers_51st_message_in_a_minute_is_refused(client, make_key, settings):
    h = await make_key("org-a", "ingest")
    await make_thread("org-a", "u1", "t1")  # u1 is a manager (the default role)
    for i in range(50):
        r = await _append(client, h)
        assert r.status_code == 201, (i, r.text)
    assert r.headers["X-RateLimit-Limit"] == "50" and r.headers["X-RateLimit-Remaining"] == "0"
    refused = await _append(client, h)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert await Message.find({"org_id": "org-a", "thread_id": "t1"}).count() == 50

    r = aioredis.from_url(settings.redis_url)
    try:
        ttls = {w: await r.ttl("chat:" + keys.user_rate("org-a", "u1", w)) for w in keys.WINDOWS}
        counts = {w: int(await r.get("chat:" + keys.user_rate("org-a", "u1", w))) for w in ttls}
    finally:
        await r.aclose()
    assert counts == {"minute": 50, "hour": 50, "day": 50}
    assert 0 < ttls["minute"] <= 60 and 3500 < ttls["hour"] <= 3600
    assert 86300 < ttls["day"] <= 86400


async def test_the_limit_follows_the_users_role(client, make_key):
    h = await make_key("org-a", "ingest")
    await make_thread("org-a", "boss", "t1")
    await client.put("/api/v1/users/boss", json={"role": "owner"}, headers=h)
    statuses = [(await _append(client, h)).status_code for _ in range(101)]
    assert statuses[:100] == [201] * 100 and statuses[100] == 429


async def test_an_ingest_batch_refuses_only_the_messages_over_the_limit(client, make_key):
    h = await make_key("org-a", "ingest")
    await make_thread("org-a", "u1", "t1")
    for _ in range(45):
        assert (await _append(client, h)).status_code == 201
    said = {"thread_id": "t1", "role": "user", "content": "again"}
    events = [{"type": "message", "id": f"m{i}", "data": said} for i in range(8)]
    events.append({"type": "thread", "id": "t2", "data": {"user_id": "u2"}})
    r = await client.post("/api/v1/ingest", json={"events": events}, headers=h)
    assert r.status_code == 207
    results = r.json()["results"]
    assert [x["status"] for x in results[:5]] == ["created"] * 5
    assert [x["error"]["code"] for x in results[5:8]] == ["rate_limited"] * 3
    assert results[8]["status"] == "created"  # other events of the batch are not touched
    assert await Message.find({"thread_id": "t1"}).count() == 50


async def test_every_request_counts_against_its_api_key(settings, database, make_key):
    app = create_app(settings.model_copy(update={"chatadmin_rate_key_per_minute": 3}), database)
    async with app.router.lifespan_context(app):
        await app.state.redis.flushdb()
        h = await make_key("org-a", "read")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            answers = [await http.get("/api/v1/threads", headers=h) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[3].headers["Retry-After"]


async def test_limits_fail_open_with_one_warning_when_redis_is_unreachable(
    settings, database, make_key, caplog
):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(settings.model_copy(update={"redis_url": dead}), database)
    async with app.router.lifespan_context(app):
        h = await make_key("org-a", "ingest")
        await make_thread("org-a", "u1", "t1")
        transport = httpx.ASGITransport(app=app)
        with caplog.at_level(logging.WARNING, logger="chatadmin.realtime"):
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                statuses = [(await _append(http, h)).status_code for _ in range(55)]
    assert statuses == [201] * 55
    warnings = [r for r in caplog.records if r.name == "chatadmin.realtime"]
    assert len(warnings) == 1 and "Redis" in warnings[0].getMessage()
