"""Redis stopped in the middle, then started again: what does not need Redis keeps answering
(at normal speed: the guard stops trying after a failure), real-time endpoints answer 503,
and the app recovers by itself once Redis is back, with no restart."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from chatadmin.app import create_app
from chatadmin.realtime import guard
from chatadmin.testservers import RedisServer
from tests.factories import make_thread

pytestmark = pytest.mark.usefixtures("database")


async def test_redis_stopped_and_restarted_under_a_running_app(
    settings, database, make_key, tmp_path, monkeypatch
):
    monkeypatch.setattr(guard, "RETRY_AFTER_S", 0.5)  # recovers sooner than in production
    server = RedisServer(tmp_path).start()  # a redis-server of this test's own, on one port
    app = create_app(settings.model_copy(update={"redis_url": server.url}), database)
    try:
        async with app.router.lifespan_context(app):
            h = await make_key("org-a", "ingest", "read")
            await make_thread("org-a", "u1", "t1")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:

                async def check() -> dict[str, int]:
                    said = {"role": "user", "content": "hi"}
                    listed = await http.get("/api/v1/threads", headers=h)
                    appended = await http.post("/api/v1/threads/t1/messages", json=said, headers=h)
                    presence = await http.get("/api/v1/presence/u1", headers=h)
                    ready = await http.get("/readyz")
                    return {
                        "list": listed.status_code,
                        "append": appended.status_code,
                        "presence": presence.status_code,
                        "ready": ready.status_code,
                    }

                assert await check() == {"list": 200, "append": 201, "presence": 200, "ready": 200}
                server.stop()
                down = await check()
                started = time.monotonic()
                for _ in range(20):  # after the first failure, no request waits for Redis
                    assert (await http.get("/api/v1/threads", headers=h)).status_code == 200
                fast = (time.monotonic() - started) / 20
                assert down["list"] == 200 and down["append"] == 201
                assert down["presence"] == 503 and down["ready"] == 503
                assert fast < 0.1, f"{fast * 1000:.0f} ms a request with Redis down"

                server.start()
                for _ in range(50):
                    back = await check()
                    if back["presence"] == 200:
                        break
                    await asyncio.sleep(0.1)
                assert back == {"list": 200, "append": 201, "presence": 200, "ready": 200}
    finally:
        server.stop()
