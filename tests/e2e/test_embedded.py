"""The embedded nx-27017 default: start, attach, stop, and `manage.py runserver` with no config."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient
from pymongo.errors import ServerSelectionTimeoutError

from chatadmin.embedded import EmbeddedMongo, free_port

ROOT = Path(__file__).resolve().parents[2]


def ping(uri: str) -> bool:
    with MongoClient(uri, serverSelectionTimeoutMS=2000) as client:
        return client.admin.command("ping").get("ok") == 1.0


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.1)
    return gone(pid)


def test_start_answers_ping_and_records_its_state(tmp_path):
    server = EmbeddedMongo(tmp_path)
    try:
        assert server.start() is server
        assert server.alive() and not server.attached
        assert server.uri == f"mongodb://127.0.0.1:{server.port}/?directConnection=true"
        assert ping(server.uri)
        state = json.loads((tmp_path / "run" / "server.json").read_text())
        assert state == {"pid": server.proc.pid, "port": server.port}
        with MongoClient(server.uri) as client:
            client.probe_db.things.insert_many([{"n": i} for i in range(10)])
            assert client.probe_db.things.count_documents({}) == 10
        files = [p for p in (tmp_path / "db").rglob("*") if p.is_file()]
        assert files, "no data files under data_dir/db"
        assert (tmp_path / "run" / "nx-27017.log").exists() or (
            tmp_path / "run" / "nx-27017.out"
        ).exists()
    finally:
        server.stop()


def test_data_survives_a_restart_on_the_same_dir(tmp_path):
    with EmbeddedMongo(tmp_path) as first, MongoClient(first.uri) as client:
        client.keep.docs.insert_one({"_id": "kept", "v": 1})
    with EmbeddedMongo(tmp_path) as second, MongoClient(second.uri) as client:
        assert client.keep.docs.find_one({"_id": "kept"}) == {"_id": "kept", "v": 1}


def test_second_instance_attaches_and_does_not_stop_the_first(tmp_path):
    first = EmbeddedMongo(tmp_path).start()
    try:
        pid = first.proc.pid
        second = EmbeddedMongo(tmp_path).start()
        assert second.attached is True
        assert second.port == first.port and second.uri == first.uri
        assert second.proc is None and not second.alive()
        second.stop()
        assert first.alive() and not gone(pid)
        assert ping(first.uri)
        assert json.loads(first.state_file.read_text())["pid"] == pid
    finally:
        first.stop()


def test_stop_ends_the_process_and_removes_the_state_file(tmp_path):
    server = EmbeddedMongo(tmp_path).start()
    pid, uri = server.proc.pid, server.uri
    server.stop()
    assert wait_gone(pid)
    assert not server.alive()
    assert not server.state_file.exists()
    with (
        pytest.raises(ServerSelectionTimeoutError),
        MongoClient(uri, serverSelectionTimeoutMS=300) as client,
    ):
        client.admin.command("ping")
    server.stop()  # stopping twice is harmless
    assert EmbeddedMongo(tmp_path).attach() is False


def test_attach_ignores_a_stale_state_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / "server.json").write_text(json.dumps({"pid": dead.pid, "port": free_port()}))
    server = EmbeddedMongo(tmp_path)
    assert server.attach() is False and server.port is None
    try:
        server.start()
        assert not server.attached and ping(server.uri)
        assert json.loads(server.state_file.read_text())["pid"] == server.proc.pid
    finally:
        server.stop()


# -- runserver with no configuration -----------------------------------------------------------


def _env(data_dir) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MONGODB_", "CHATADMIN_", "REDIS_"))
    }
    return {**env, "CHATADMIN_DATA_DIR": str(data_dir), "CHATADMIN_LOG_LEVEL": "WARNING"}


def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"runserver exited with {proc.returncode}"
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("runserver did not answer /healthz in time")


def test_runserver_with_no_configuration_uses_the_embedded_database(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "runserver.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", "--port", str(port)],
        env=_env(data_dir), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    log.close()
    nx_pid = None
    try:
        _wait_healthy(base, proc)
        state = json.loads((data_dir / "run" / "server.json").read_text())
        nx_pid = state["pid"]
        assert not gone(nx_pid)

        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["mongo"] == "ok"
        assert body["redis"] == "in-process"
        assert body["database"].startswith("nx-27017 ")
        assert body["database"].endswith(" (embedded)")
        assert body["db_name"] == "chatadmin"

        key = (data_dir / "secret_key").read_text().strip()
        assert len(key) >= 32

        with MongoClient(f"mongodb://127.0.0.1:{state['port']}/?directConnection=true") as c:
            db = c["chatadmin"]
            assert "chat_messages" in db.list_collection_names()
            assert [r["status"] for r in db.migrations.find({"version": "0001"})] == ["completed"]

        # A command run beside the server talks to its database instead of starting another.
        check = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "check"],
            env=_env(data_dir), cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
        assert "No problems found." in check.stdout
        assert json.loads((data_dir / "run" / "server.json").read_text())["pid"] == nx_pid
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200

        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert wait_gone(nx_pid), "the embedded nx-27017 outlived runserver"
        assert not (data_dir / "run" / "server.json").exists()
        assert "Traceback" not in (tmp_path / "runserver.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if nx_pid is not None and not gone(nx_pid):
            os.killpg(nx_pid, signal.SIGKILL)


def test_the_data_dir_is_private_to_its_owner(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "old-file").write_text("left by an older version")
    (data / "old-file").chmod(0o644)
    with EmbeddedMongo(data) as server, MongoClient(server.uri) as client:
        client["private"]["admin_users"].insert_one({"password_hash": "$argon2id$..."})
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    paths = list(data.rglob("*"))
    files = [p for p in paths if p.is_file()]
    assert any(p.suffix in (".db", ".sqlite", ".sqlite3") or "db" in p.parts for p in files)
    loose = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths
             if stat.S_IMODE(p.stat().st_mode) & 0o077}  # fmt: skip
    assert loose == {}
