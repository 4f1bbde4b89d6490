"""MongoDB going away under a running server: the API and /readyz answer 503, then recover."""

import time

import httpx

from chatadmin.testservers import AppServer, selected_server, start_test_server


def test_database_outage_gives_503_json_and_recovers(tmp_path, redis_url):
    kind = selected_server()  # a server of the session's kind, of its own: this one is stopped
    mongo = start_test_server(kind, tmp_path / "mongo", persistent=True)
    server = AppServer(
        mongo.uri + "&serverSelectionTimeoutMS=800", "outage", tmp_path, redis_url=redis_url
    )
    base = server.base
    try:
        headers = {"Authorization": f"Bearer {server.create_api_key('acme', 'ingest,read')}"}
        server.start()
        assert httpx.get(base + "/readyz", timeout=5).status_code == 200
        assert httpx.get(base + "/api/v1/threads", headers=headers).status_code == 200
        data_port = mongo.port
        mongo.stop()

        down = httpx.get(base + "/api/v1/threads", headers=headers, timeout=30)
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "unavailable"
        ready = httpx.get(base + "/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["down"] == ["mongo"]
        assert httpx.get(base + "/healthz").status_code == 200

        mongo = start_test_server(kind, tmp_path / "mongo", data_port, persistent=True)
        deadline = time.monotonic() + 30
        while httpx.get(base + "/readyz", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "did not recover"
            time.sleep(0.3)
        assert httpx.get(base + "/api/v1/threads", headers=headers).status_code == 200
    finally:
        server.stop()
        mongo.stop()
    assert "Traceback" not in server.log()


def test_a_database_that_stops_answering_costs_a_request_its_deadline_not_forever(
    tmp_path, redis_url
):
    """SIGSTOP: connections stay open and nothing answers. Reads answer 503 once the reply
    timeout passes, writes are spooled, requests beyond the pool wait no longer than that
    either; after SIGCONT the server recovers by itself and replays the spool."""
    import os
    import signal
    from concurrent.futures import ThreadPoolExecutor

    kind = selected_server()
    mongo = start_test_server(kind, tmp_path / "mongo", persistent=True)
    server = AppServer(
        mongo.uri + "&serverSelectionTimeoutMS=800", "stalled", tmp_path, redis_url=redis_url,
        env={"CHATADMIN_MONGO_TIMEOUT_MS": "1500", "CHATADMIN_MONGO_POOL_SIZE": "4"},
    )  # fmt: skip
    try:
        headers = {"Authorization": f"Bearer {server.create_api_key('acme', 'ingest,read')}"}
        server.start()
        thread = {"user_id": "u1", "thread_id": "t1"}
        assert httpx.post(server.base + "/api/v1/threads", json=thread, headers=headers,
                          timeout=10).status_code == 201  # fmt: skip
        os.kill(mongo.proc.pid, signal.SIGSTOP)
        try:

            def read(_):
                started = time.monotonic()
                r = httpx.get(server.base + "/api/v1/threads", headers=headers, timeout=60)
                return r.status_code, time.monotonic() - started

            with ThreadPoolExecutor(12) as pool:  # three times the pool
                reads = list(pool.map(read, range(12)))
            assert {status for status, _ in reads} == {503}, reads
            assert max(took for _, took in reads) < 12, reads  # no request waits forever
            said = {"thread_id": "t1", "role": "user", "content": "while stalled"}
            event = {"type": "message", "id": "m1", "data": said}
            wrote = httpx.post(server.base + "/api/v1/ingest", json={"events": [event]},
                               headers=headers, timeout=60)  # fmt: skip
            assert wrote.status_code == 202 and wrote.json()["results"][0]["spooled"], wrote.text
        finally:
            os.kill(mongo.proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while True:
            got = httpx.get(server.base + "/api/v1/threads/t1", headers=headers, timeout=30)
            if got.status_code == 200 and got.json()["thread"]["message_count"] == 1:
                break
            assert time.monotonic() < deadline, f"did not recover: {got.status_code} {got.text}"
            time.sleep(0.3)
    finally:
        server.stop()
        mongo.stop()
    assert "Traceback" not in server.log()
