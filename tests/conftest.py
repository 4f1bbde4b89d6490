"""Test harness on real servers: MongoDB from MONGODB_URI, or the server CHATADMIN_TEST_SERVER
names (nx-27017, the default, or secantusdb) started by us; Redis from REDIS_URL or a
redis-server we start; each once per session on a free port. Collections are emptied after every
test (indexes stay)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio import Redis

import tests.commands  # noqa: F401  (registers the command recorder before any client)
from chatadmin.db import Database
from chatadmin.embedded import EmbeddedServerError
from chatadmin.migrations import migrate
from chatadmin.models import DOCUMENT_MODELS
from chatadmin.settings import Settings
from chatadmin.testservers import SECANTUS, RedisServer, selected_server, start_test_server

ROOT = Path(__file__).resolve().parent.parent


def _second_pass() -> bool:
    """The SecantusDB pass of `scripts/test.sh`, after the nx-27017 one (not a MONGODB_URI run)."""
    return not os.environ.get("MONGODB_URI") and selected_server() == SECANTUS


def pytest_collection_modifyitems(config, items):
    """On the second pass, leave out the `one_server` tests: what they check (a browser's
    rendering and scripts, the HTTP protocol, argument parsing) is the same whatever server is
    under the app, and the server side of every admin page they use is checked on both servers by
    tests/admin and tests/security. Run them here too with CHATADMIN_TEST_ONE_SERVER=both."""
    if not _second_pass() or os.environ.get("CHATADMIN_TEST_ONE_SERVER") == "both":
        return
    kept, left = [], []
    for item in items:
        (left if item.get_closest_marker("one_server") else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


def pytest_report_header(config):
    if _second_pass() and os.environ.get("CHATADMIN_TEST_ONE_SERVER") != "both":
        return "one_server tests left out: they ran on the nx-27017 pass (see tests/conftest.py)"
    return None


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory) -> str:
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"]
        return
    kind = selected_server()
    server = start_test_server(kind, tmp_path_factory.mktemp(kind))
    yield server.uri
    server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    except EmbeddedServerError as exc:
        pytest.exit(str(exc), 2)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def settings(mongo_uri, redis_url, tmp_path_factory) -> Settings:
    return Settings(
        mongodb_uri=mongo_uri,
        mongodb_db_name=f"chatadmin_test_{uuid.uuid4().hex[:8]}",
        redis_url=redis_url,
        chatadmin_debug=True,
        chatadmin_secret_key="test-secret-key-0123456789abcdef",
        chatadmin_data_dir=tmp_path_factory.mktemp("data"),
        _env_file=None,
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database(settings) -> Database:
    database = await Database.open(settings)
    await migrate(database.db)
    yield database
    await database.client.drop_database(settings.mongodb_db_name)
    await database.close()


@pytest.fixture(scope="session")
def server_kind(database) -> str:
    """What answers: "nx-27017", "secantusdb" or "mongodb" (as the server says)."""
    return database.info.kind


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def clean(request):
    """Empty every collection after each test that used the database."""
    yield
    if "database" not in request.fixturenames:
        return
    database = request.getfixturevalue("database")
    for model in DOCUMENT_MODELS:
        if model.Settings.name != "migrations":
            await database.db[model.Settings.name].delete_many({})


@pytest.fixture(scope="session")
def zygote(tmp_path_factory):
    """The command server that forks a `manage.py` process per command (`tests/zygote.py`)."""
    from tests.zygote import Zygote

    server = Zygote(tmp_path_factory.mktemp("zygote"))
    yield server
    server.stop()


@pytest.fixture
def runner(settings, tmp_path, zygote):
    """Run `manage.py` in a process of its own against the test servers and a database of its
    own: forked from the command server (`real=True`: started from scratch with `python
    manage.py`, as a user would)."""
    db_name = f"chatadmin_cli_{uuid.uuid4().hex[:8]}"

    def run(
        *args: str,
        input: str | None = None,
        env: dict | None = None,
        timeout: float = 120,
        real: bool = False,
    ):
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "CHATADMIN_"))},
            "MONGODB_URI": settings.mongodb_uri,
            "MONGODB_DB_NAME": db_name,
            "REDIS_URL": settings.redis_url,
            "CHATADMIN_DATA_DIR": str(tmp_path / "data"),
            "CHATADMIN_SECRET_KEY": "cli-test-secret-0123456789abcdef",
            "CHATADMIN_LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        full_env = {k: v for k, v in full_env.items() if v is not None}
        if not real:
            return zygote.run(list(args), env=full_env, cwd=tmp_path, input=input, timeout=timeout)
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            input=input, capture_output=True, text=True, env=full_env, timeout=timeout,
            cwd=tmp_path,
        )  # fmt: skip

    run.db_name = db_name
    yield run
    from pymongo import MongoClient

    with MongoClient(settings.mongodb_uri) as client:
        client.drop_database(db_name)


@pytest_asyncio.fixture(loop_scope="session")
async def app(settings, database):
    """The app on the session database, its lifespan running, and Redis empty (rate-limit
    windows and real-time state start fresh in every test)."""
    from chatadmin.app import create_app

    application = create_app(settings, database=database)
    if settings.redis_url:  # emptied through a client of its own: the app's short timeout
        async with Redis.from_url(settings.redis_url, socket_timeout=10) as fresh:
            await fresh.flushdb()
    else:
        await application.state.redis.flushdb()
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture(loop_scope="session")
async def client(app):
    """An HTTP client for the app (no network: ASGI in-process)."""
    import httpx

    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest_asyncio.fixture(loop_scope="session")
async def make_key(database):
    """Create an API key: `await make_key("org-a", "ingest", "read")` -> headers."""
    from chatadmin.api.auth import forget_keys
    from chatadmin.services import accounts

    async def make(org: str = "org-a", *scopes: str) -> dict:
        _key, plaintext = await accounts.create_api_key(org, list(scopes or ("ingest", "read")))
        return {"Authorization": f"Bearer {plaintext}"}

    yield make
    forget_keys()
