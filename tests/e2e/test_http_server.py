"""`manage.py runserver` as an attacker meets it, over real sockets: huge bodies are refused
before they are read (memory stays flat), slow headers are cut off, large headers are
answered, and a forwarded address from an untrusted peer is not believed."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from chatadmin.middleware import DRAIN_MAX_S
from chatadmin.testservers import AppServer

# The HTTP protocol in front of the app does not depend on the database server under it.
pytestmark = pytest.mark.one_server

PASSWORD = "server-test-password-0123"
HEADER_TIMEOUT_S = 1.0


@pytest.fixture(autouse=True)
def clean():
    """This module uses a database of its own (dropped at the end), not the session's."""
    yield


@pytest.fixture(scope="module")
def server(settings, redis_url, tmp_path_factory):
    """One runserver process on a fresh database, with an admin user."""
    env = {
        "REDIS_PREFIX": f"http-{uuid.uuid4().hex[:8]}:",
        "CHATADMIN_DEBUG": "1",
        "CHATADMIN_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "CHATADMIN_LOG_LEVEL": "INFO",  # a client gone mid-body is an INFO line
    }
    db_name = f"chatadmin_http_{uuid.uuid4().hex[:8]}"
    app = AppServer(
        settings.mongodb_uri, db_name, tmp_path_factory.mktemp("http-server"),
        redis_url=redis_url, env=env,
    )  # fmt: skip
    try:
        made = app.manage(
            "createadmin", "--username", "probe", "--role", "admin", "--password-stdin",
            input=PASSWORD + "\n",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        key = app.create_api_key("http-org", "ingest")
        app.start()
        pid = app.healthz_pid()
        assert pid, app.log()
        yield {
            "base": app.base,
            "port": app.port,
            "pid": pid,
            "db": db_name,
            "uri": settings.mongodb_uri,
            "key": key,
            "log": app.log,
        }
    finally:
        app.stop()
        with MongoClient(settings.mongodb_uri) as client:
            client.drop_database(db_name)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _post_huge(port: int, path: str, megabytes: int, answers: list) -> None:
    """A chunked POST of `megabytes` that keeps sending until the server answers or hangs up."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    chunk = b"a" * (1024 * 1024)
    frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    try:
        for _ in range(megabytes):
            s.sendall(frame)
    except OSError:
        pass  # the server stopped reading and closed: what we want
    try:
        answers.append(s.recv(200))
    except OSError as exc:
        answers.append(repr(exc).encode())
    finally:
        s.close()


def test_huge_unauthenticated_posts_get_413_and_memory_stays_flat(server):
    before = rss_mb(server["pid"])
    answers: list[bytes] = []
    threads = [
        threading.Thread(target=_post_huge, args=(server["port"], path, 400, answers))
        for path in ("/admin/login", "/admin/login", "/admin/threads/create", "/api/v1/ingest")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    after = rss_mb(server["pid"])
    assert len(answers) == 4
    statuses = [a.split(b"\r\n", 1)[0] for a in answers]
    # The admin refuses the size; the API refuses the missing key first. Never a 500.
    assert all(b" 413 " in s or b" 401 " in s for s in statuses), statuses
    assert sum(b" 413 " in s for s in statuses) >= 3, statuses
    assert after - before < 100, (before, after)
    assert httpx.get(f"{server['base']}/healthz", timeout=5).status_code == 200


def test_a_client_that_sends_its_whole_oversized_body_first_reads_the_413(server):
    # httpx, like most clients, writes the whole body before it reads: the server reads what is
    # left of it before answering, so the 413 is not lost to a connection reset.
    body = b'{"events": ["' + b"x" * (6 * 1024 * 1024) + b'"]}'
    for _ in range(5):
        response = httpx.post(
            f"{server['base']}/api/v1/ingest", content=body, timeout=30,
            headers={"Content-Type": "application/json", "Authorization": "Bearer nope"},
        )  # fmt: skip
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_large"


def test_a_client_that_declares_more_than_it_sends_gets_the_413_within_the_drain_bound(server):
    # Headers that announce a body over the limit, a few bytes of it, and then silence: the
    # server stops waiting for the rest after DRAIN_MAX_S, answers 413 and closes.
    head = (
        b"POST /api/v1/threads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 6000000\r\n\r\n{"title": '
    )
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=30) as s:
        started = time.monotonic()
        s.sendall(head)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "too_large"
    assert waited < DRAIN_MAX_S + 5, waited


@pytest.mark.parametrize(
    "path, headers",
    [
        ("/api/v1/ingest", "Content-Type: application/json\r\nAuthorization: Bearer {key}\r\n"),
        ("/admin/login", "Content-Type: application/x-www-form-urlencoded\r\n"),
    ],
)
def test_a_client_that_hangs_up_mid_body_is_logged_as_gone_not_as_an_error(server, path, headers):
    before = len(server["log"]())
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=10) as s:
        head = headers.format(key=server["key"])
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: t\r\n{head}Content-Length: 5000\r\n\r\n".encode()
            + b'{"events": ['
            + b" " * 100
        )
        time.sleep(0.3)  # the app is reading the body when the client goes
    gone = f"client went away before its request was read: POST {path}"
    deadline = time.monotonic() + 10
    while gone not in server["log"]()[before:]:
        assert time.monotonic() < deadline, server["log"]()[before:]
        time.sleep(0.1)
    logged = server["log"]()[before:]
    for error in ("Traceback", "Exception in ASGI application", "unhandled error", " ERROR "):
        assert error not in logged, logged
    assert httpx.get(f"{server['base']}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
        b"NOT A REQUEST LINE\r\n\r\n",
    ],
)
def test_a_request_http_cannot_parse_gets_a_json_400(server, raw):
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=10) as s:
        s.sendall(raw)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["code"] == "bad_request"


def test_slow_headers_are_cut_off(server):
    s = socket.create_connection(("127.0.0.1", server["port"]), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    start, closed_after = time.monotonic(), None
    for i in range(40):  # one header line every 0.25 s: never done
        try:
            s.sendall(b"X-Drip-%d: y\r\n" % i)
            s.settimeout(0.25)
            if s.recv(100) == b"":
                closed_after = time.monotonic() - start
                break
        except TimeoutError:
            continue
        except OSError:
            closed_after = time.monotonic() - start
            break
    s.close()
    assert closed_after is not None, "the server kept a slow-header connection for 10 s"
    assert closed_after < HEADER_TIMEOUT_S + 2


def _login(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=10)
    page = client.get("/admin/login")
    token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
    done = client.post(
        "/admin/login", data={"username": "probe", "password": PASSWORD, "csrftoken": token}
    )
    assert done.status_code == 303, done.text[:300]
    return client


@pytest.mark.parametrize("size", [12_000, 14_000, 16_000])
def test_large_headers_on_a_signed_in_request_are_answered(server, size):
    client = _login(server["base"])
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    client.close()
    request = (
        f"GET /admin/ HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nX-Pad: {'p' * size}\r\n\r\n"
    ).encode()
    s = socket.create_connection(("127.0.0.1", server["port"]), timeout=10)
    for i in range(0, len(request), 1400):  # as a network delivers it: in segments
        s.sendall(request[i : i + 1400])
    status = s.recv(100).split(b"\r\n", 1)[0]
    s.close()
    assert status in (b"HTTP/1.1 200 OK", b"HTTP/1.1 431 Request Header Fields Too Large",
                      b"HTTP/1.1 400 Bad Request"), status  # fmt: skip


def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(server):
    base = server["base"]
    for i in range(7):  # rotating X-Forwarded-For does not dodge the per-address lock
        with httpx.Client(base_url=base, timeout=10) as client:
            page = client.get("/admin/login")
            token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
            client.post(
                "/admin/login",
                data={"username": f"nobody-{i}", "password": "wrong", "csrftoken": token},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            )
    with MongoClient(server["uri"]) as mongo:
        entries = list(mongo[server["db"]].audit_logs.find({"action": "login_failed"}))
    assert entries and {e["ip_address"] for e in entries} == {"127.0.0.1"}
    with httpx.Client(base_url=base, timeout=10) as client:
        page = client.get("/admin/login")
        token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
        locked = client.post(
            "/admin/login",
            data={"username": "probe", "password": PASSWORD, "csrftoken": token},
            headers={"X-Forwarded-For": "203.0.113.77"},
        )
    assert locked.status_code == 400 and "Too many failed logins" in locked.text


def test_start_up_says_three_things_and_no_library_chatter(settings, redis_url, tmp_path):
    db_name = f"chatadmin_log_{uuid.uuid4().hex[:8]}"
    env = {"CHATADMIN_LOG_LEVEL": "INFO", "CHATADMIN_AUTO_MIGRATE": "0"}
    app = AppServer(settings.mongodb_uri, db_name, tmp_path, redis_url=redis_url, env=env)
    try:
        app.start()
        httpx.get(f"{app.base}/healthz", timeout=5)
    finally:
        app.stop()
        with MongoClient(settings.mongodb_uri) as client:
            client.drop_database(db_name)
    output = app.log().splitlines()
    ready = next((i for i, line in enumerate(output) if " ready: open " in line), len(output))
    lines, rest = output[: ready + 1], "\n".join(output[ready + 1 :])
    text = "\n".join(lines)
    assert any(" chatadmin.db: database: " in line for line in lines), text
    assert any(" redis: redis://127.0.0.1:" in line for line in lines), text
    assert any(f"ready: open http://127.0.0.1:{app.port}/" in line for line in lines), text
    assert "starlette_admin" not in text + rest and "Uvicorn running" not in text + rest
    assert len(lines) <= 5, text
    assert "GET /healthz" not in rest  # no access log unless debugging
