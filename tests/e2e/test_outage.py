"""MongoDB going away under a running server: the API and /readyz answer 503, then recover."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from chatadmin.embedded import free_port
from chatadmin.testservers import selected_server, start_test_server

ROOT = Path(__file__).resolve().parents[2]


def wait_for(url: str, timeout: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def test_database_outage_gives_503_json_and_recovers(tmp_path, redis_url):
    kind = selected_server()  # a server of the session's kind, of its own: this one is stopped
    mongo = start_test_server(kind, tmp_path / "mongo", persistent=True)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "CHATADMIN_"))},
        "MONGODB_URI": mongo.uri + "&serverSelectionTimeoutMS=800",
        "MONGODB_DB_NAME": "outage",
        "REDIS_URL": redis_url,
        "CHATADMIN_SECRET_KEY": "outage-test-secret-0123456789abcdef",
        "CHATADMIN_AUTO_MIGRATE": "1",
        "CHATADMIN_LOG_LEVEL": "WARNING",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    key = subprocess.run(
        [*manage, "createapikey", "--org", "acme", "--scopes", "ingest,read"],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    server = subprocess.Popen(
        [*manage, "runserver", "--port", str(port)], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        assert wait_for(base + "/readyz").status_code == 200
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
        server.terminate()
        _out, err = server.communicate(timeout=20)
        mongo.stop()
    assert "Traceback" not in err
