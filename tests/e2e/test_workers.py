"""`manage.py runserver --workers 2` over real sockets: a live-tail listener on one worker gets
the events written through the other, and a user's rate limit is one limit across both; each
worker writes where its tasks wait to its log on SIGUSR2."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid

import httpx
import pytest
from pymongo import MongoClient

from chatadmin import taskdump
from chatadmin.testservers import AppServer


@pytest.fixture(autouse=True)
def clean():
    """This test uses a database of its own (dropped at the end), not the session's."""
    yield


@pytest.fixture
def workers(settings, redis_url, tmp_path):
    """Two workers on one port, a fresh database, and an API key for it."""
    db_name = f"chatadmin_workers_{uuid.uuid4().hex[:8]}"
    env = {
        "REDIS_PREFIX": f"workers-{uuid.uuid4().hex[:8]}:",
        "CHATADMIN_SSE_HEARTBEAT_S": "0.5",
        # This test is about sharing across processes, not about timeouts: a busy machine must
        # not make a Redis call time out and the limits fail open.
        "CHATADMIN_REDIS_TIMEOUT_MS": "2000",
    }
    server = AppServer(
        settings.mongodb_uri, db_name, tmp_path, redis_url=redis_url, workers=2, env=env
    )
    try:
        migrated = server.manage("migrate")
        assert migrated.returncode == 0, migrated.stderr
        key = server.create_api_key("acme", "ingest,read")
        server.start()  # both workers up and answering
        pids = set(server.worker_pids())
        assert len(pids) == 2, server.log()
        yield server.base, {"Authorization": f"Bearer {key}"}, pids, db_name, server
    finally:
        server.stop()
        with MongoClient(settings.mongodb_uri) as client:
            client.drop_database(db_name)


async def _pinned(base: str, pid: int) -> httpx.AsyncClient:
    """A client whose one kept-alive connection is served by the worker `pid`."""
    for _ in range(100):
        client = httpx.AsyncClient(
            base_url=base, timeout=10, limits=httpx.Limits(max_connections=1)
        )
        if (await client.get("/healthz")).json()["pid"] == pid:
            return client
        await client.aclose()
    raise AssertionError(f"no connection reached worker {pid}")


async def test_events_and_rate_limits_cross_worker_processes(workers, settings):
    base, headers, pids, db_name, _ = workers
    async with httpx.AsyncClient(base_url=base, timeout=10) as listener:
        made = await listener.post("/api/v1/threads", json={"user_id": "u1", "thread_id": "t1"},
                                   headers=headers)  # fmt: skip
        assert made.status_code == 201, made.text
        async with listener.stream("GET", "/api/v1/threads/t1/events", headers=headers) as tail:
            assert tail.status_code == 200
            lines = tail.aiter_lines()
            async for line in lines:  # the listener's worker names itself in its connection
                if line.startswith(": connected "):
                    connection_id = line.split()[-1]
                    break
            with MongoClient(settings.mongodb_uri) as mongo:
                found = mongo[db_name].connections.find_one({"connection_id": connection_id})
            held = found["socket_id"]
            listening_pid = int(held.split(":")[1])
            other = (pids - {listening_pid}).pop()
            writers = [await _pinned(base, listening_pid), await _pinned(base, other)]
            statuses = []
            try:
                for i in range(51):  # u1 is a manager: 50 messages a minute, across both
                    body = {"role": "user", "content": f"n{i}"}
                    r = await writers[i % 2].post("/api/v1/threads/t1/messages", json=body,
                                                  headers=headers)  # fmt: skip
                    statuses.append(r.status_code)
            finally:
                for w in writers:
                    await w.aclose()
            seen = []

            async def read():
                async for line in lines:
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:])["seq"])
                        if len(seen) == 50:
                            return

            await asyncio.wait_for(read(), 20)
    assert statuses == [201] * 50 + [429]
    # every event once and in order, half of them written by the other worker
    assert seen == list(range(50))


def test_each_worker_writes_where_its_tasks_wait_to_its_log_on_sigusr2(workers):
    *_, pids, _, server = workers
    before = len(server.log())
    for pid in pids:
        os.kill(pid, taskdump.SIGNAL)
    deadline = time.monotonic() + 10
    while server.log()[before:].count("--- end of tasks ---") < len(pids):
        assert time.monotonic() < deadline, server.log()[before:]
        time.sleep(0.1)
    dumped = server.log()[before:]
    assert len(re.findall(r"^--- \d+ asyncio tasks ---$", dumped, re.M)) == len(pids), dumped
    # Every worker replays the spool in a task of its own, asleep between rounds.
    replayers = re.findall(r"chatadmin/services/spooled\.py:\d+ in run_forever$", dumped, re.M)
    assert len(replayers) == len(pids), dumped
    assert sorted(server.worker_pids()) == sorted(pids), "a worker died of the signal"
