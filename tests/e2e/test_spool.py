"""MongoDB stopped under a running server: writes are spooled (202, fsync'd), reads answer 503
with Retry-After, and when MongoDB returns the spool is replayed by itself, exactly once;
a kill -9 of the app while writes wait in the spool loses none of them."""

from __future__ import annotations

import time

import httpx
from pymongo import MongoClient

from chatadmin.testservers import AppServer, selected_server, start_test_server


def _events(prefix: str, thread: str, n: int) -> list[dict]:
    return [
        {"type": "message", "id": f"{prefix}-{i}",
         "data": {"thread_id": thread, "user_id": "u1", "role": "user", "content": f"{prefix} {i}"}}
        for i in range(n)
    ]  # fmt: skip


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_writes_during_an_outage_are_spooled_and_replayed_exactly_once(tmp_path, redis_url):
    kind = selected_server()
    mongo = start_test_server(kind, tmp_path / "mongo", persistent=True)
    data_port = mongo.port
    server = AppServer(
        mongo.uri + "&serverSelectionTimeoutMS=800", "spool", tmp_path, redis_url=redis_url
    )
    headers = {"Authorization": f"Bearer {server.create_api_key('acme', 'ingest,read')}"}
    base = server.base
    server.start()
    try:
        thread = {"user_id": "u1", "thread_id": "t1", "title": "spooled"}
        assert httpx.post(f"{base}/api/v1/threads", json=thread, headers=headers).status_code == 201
        mongo.stop()

        # 1. MongoDB down under a running server: writes go to the spool, reads answer 503.
        started = time.monotonic()
        first = httpx.post(f"{base}/api/v1/ingest", json={"events": _events("a", "t1", 30)},
                           headers=headers, timeout=30)  # fmt: skip
        assert first.status_code == 202, first.text
        assert all(r["spooled"] and r["status"] == "accepted" for r in first.json()["results"])
        bad = {"events": [*_events("b", "t1", 2), {"type": "message", "id": "bad", "data": {}}]}
        mixed = httpx.post(f"{base}/api/v1/ingest", json=bad, headers=headers, timeout=30)
        assert mixed.status_code == 207  # the invalid event is refused now, the rest spooled
        assert [r["status"] for r in mixed.json()["results"]] == ["accepted", "accepted", "error"]
        said = httpx.post(f"{base}/api/v1/threads/t1/messages", headers=headers, timeout=30,
                          json={"role": "assistant", "content": "spooled answer"})  # fmt: skip
        assert said.status_code == 202 and said.json()["spooled"] is True, said.text
        assert time.monotonic() - started < 10  # no request waits out the whole timeout
        read = httpx.get(f"{base}/api/v1/threads/t1", headers=headers, timeout=30)
        assert read.status_code == 503 and int(read.headers["retry-after"]) > 0
        ready = httpx.get(f"{base}/readyz", timeout=30).json()
        assert ready["spool"]["segments"] >= 1 and ready["spool"]["bytes"] > 0
        assert "MongoDB unreachable (" in server.log()  # the operator is told why, once

        # 2. MongoDB back: the server replays by itself, no restart.
        mongo = start_test_server(kind, tmp_path / "mongo", data_port, persistent=True)
        with MongoClient(mongo.uri) as client:
            stored = client["spool"]["chat_messages"]
            _wait(lambda: stored.count_documents({"thread_id": "t1"}) == 33, 60, "no replay")
            seqs = sorted(m["seq"] for m in stored.find({"thread_id": "t1"}))
            assert seqs == list(range(33))
            thread_doc = client["spool"]["chat_sessions"].find_one({"thread_id": "t1"})
            assert thread_doc["message_count"] == 33
        _wait(lambda: httpx.get(f"{base}/readyz", timeout=5).json()["spool"]["segments"] == 0,
              30, "the spool was not emptied")  # fmt: skip
        again = httpx.post(f"{base}/api/v1/ingest", json={"events": _events("a", "t1", 30)},
                           headers=headers, timeout=30)  # fmt: skip
        assert {r["status"] for r in again.json()["results"]} == {"unchanged"}

        # 3. Down again, writes spooled, then the app is killed -9 before MongoDB returns.
        mongo.stop()
        late = httpx.post(f"{base}/api/v1/ingest", json={"events": _events("c", "t1", 20)},
                          headers=headers, timeout=30)  # fmt: skip
        assert late.status_code == 202
        server.kill()  # SIGKILL to every process of the server
        mongo = start_test_server(kind, tmp_path / "mongo", data_port, persistent=True)
        restarted = len(server.log())  # the log of the first run ends here
        server.start()  # the same port, data dir and spool
        with MongoClient(mongo.uri) as client:
            stored = client["spool"]["chat_messages"]
            _wait(lambda: stored.count_documents({"thread_id": "t1"}) == 53, 60, "lost writes")
            assert sorted(m["seq"] for m in stored.find({"thread_id": "t1"})) == list(range(53))
            ids = [m["message_id"] for m in stored.find({"thread_id": "t1"})]
            assert len(ids) == len(set(ids))
    finally:
        with_err = server.alive()
        server.stop()
        mongo.stop()
    err = server.log()[restarted:]
    assert not with_err or "Traceback" not in err, err[-3000:]
