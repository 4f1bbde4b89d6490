"""The Starlette app: health and readiness, the landing page, JSON errors, and key settings."""

import contextlib
import os
import stat

import httpx
import pytest
from pydantic import ValidationError

from chatadmin.app import create_app
from chatadmin.db import Database, ServerInfo, make_client
from chatadmin.embedded import free_port
from chatadmin.settings import ConfigError, Settings


@contextlib.asynccontextmanager
async def serve(settings: Settings, database: Database):
    """The app with its lifespan running, and an HTTP client talking to it in process."""
    app = create_app(settings, database=database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
def clean_env(monkeypatch):
    """No configuration from the environment leaks into Settings built by a test."""
    for name in list(os.environ):
        if name.startswith(("MONGODB_", "CHATADMIN_", "REDIS_")):
            monkeypatch.delenv(name)


# -- health and readiness ----------------------------------------------------------------------


async def test_healthz_is_ok(settings, database):
    async with serve(settings, database) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "pid": os.getpid()}  # the worker that answered


async def test_readyz_reports_mongo_and_redis_ok(settings, database):
    async with serve(settings, database) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mongo"] == "ok"
    assert body["redis"] == "ok"
    assert body["database"].split()[0] in ("nx-27017", "secantusdb", "mongodb")
    assert body["database"].startswith(database.info.label())
    assert "(embedded)" not in body["database"]  # the harness's database is not owned by the app
    assert body["db_name"] == settings.mongodb_db_name
    assert "down" not in body


async def test_lifespan_leaves_a_given_database_open(settings, database):
    async with serve(settings, database) as client:
        assert (await client.get("/readyz")).status_code == 200
    assert await database.ping() == database.info
    assert await database.db.list_collection_names()


async def test_index_page_names_the_database(settings, database):
    async with serve(settings, database) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>chatadmin" in response.text
    assert database.info.label() in response.text
    assert settings.mongodb_db_name in response.text
    assert "/readyz" in response.text


async def test_index_page_leads_to_the_admin_the_docs_and_the_first_account(settings, database):
    from chatadmin.app import CREATEADMIN
    from chatadmin.services import accounts

    async with serve(settings, database) as client:
        empty = await client.get("/")
        assert 'href="/admin/"' in empty.text and 'href="/api/v1/docs"' in empty.text
        assert CREATEADMIN in empty.text and "no admin user yet" in empty.text
        assert f"at least {accounts.MIN_PASSWORD_LENGTH} characters" in empty.text
        assert (await client.get("/api/v1/docs")).status_code == 200
        await accounts.create_admin_user("first-admin", "a long enough password", "admin")
        staffed = await client.get("/")
    assert 'href="/admin/"' in staffed.text
    assert CREATEADMIN not in staffed.text


async def test_static_files_are_served(settings, database):
    async with serve(settings, database) as client:
        response = await client.get("/static/chatadmin.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


async def test_readyz_is_503_when_redis_is_down(settings, database):
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with serve(down, database) as client:
        response = await client.get("/readyz")
        page = await client.get("/")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["redis"]
    assert body["redis"].startswith("down: ")
    assert body["mongo"] == "ok"
    assert page.status_code == 200 and "down: " in page.text


async def test_readyz_without_redis_url_uses_the_in_process_store(settings, database):
    local = settings.model_copy(update={"redis_url": None})
    async with serve(local, database) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["redis"] == "in-process"


async def test_readyz_is_503_when_mongo_is_down(settings, database):
    client = make_client(
        f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", timeout_ms=300
    )
    unreachable = Database(
        client=client,
        db=client["chatadmin_unreachable"],
        info=ServerInfo("mongodb", "7.0"),
        uri="mongodb://127.0.0.1/",
    )
    try:
        async with serve(settings, unreachable) as http:
            response = await http.get("/readyz")
            health = await http.get("/healthz")
    finally:
        await client.close()
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["mongo"]
    assert body["mongo"].startswith("down: ")
    assert body["redis"] == "ok"
    assert body["database"] == "mongodb 7.0"
    assert health.status_code == 200  # liveness does not depend on the database


# -- JSON errors -------------------------------------------------------------------------------


async def test_unknown_route_is_a_json_404(settings, database):
    async with serve(settings, database) as client:
        response = await client.get("/no/such/page")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert isinstance(error["message"], str) and error["message"]
    assert error["details"] == []


async def test_wrong_method_is_a_json_405(settings, database):
    async with serve(settings, database) as client:
        response = await client.post("/healthz", json={})
        delete = await client.delete("/readyz")
    for r in (response, delete):
        assert r.status_code == 405
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["allow"]


# -- settings: the secret key ------------------------------------------------------------------


@pytest.mark.parametrize("weak", ["changeme", "CHANGEME", "secret", "", "too-short-123"])
def test_weak_secret_key_is_refused_outside_debug(clean_env, tmp_path, weak):
    with pytest.raises((ConfigError, ValidationError), match="CHATADMIN_SECRET_KEY"):
        Settings(chatadmin_secret_key=weak, chatadmin_data_dir=tmp_path, _env_file=None)


def test_weak_secret_key_from_the_environment_is_refused(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("CHATADMIN_SECRET_KEY", "changeme")
    monkeypatch.setenv("CHATADMIN_DATA_DIR", str(tmp_path))
    with pytest.raises((ConfigError, ValidationError), match="CHATADMIN_SECRET_KEY"):
        Settings(_env_file=None)
    monkeypatch.setenv("CHATADMIN_DEBUG", "1")
    assert Settings(_env_file=None).secret_key() == "changeme"


def test_weak_secret_key_is_accepted_in_debug(clean_env, tmp_path):
    s = Settings(
        chatadmin_secret_key="changeme", chatadmin_debug=True, chatadmin_data_dir=tmp_path,
        _env_file=None,
    )  # fmt: skip
    assert s.secret_key() == "changeme"
    assert not (tmp_path / "secret_key").exists()


def test_strong_secret_key_is_used_as_is(clean_env, tmp_path):
    key = "a-long-random-production-key-0123456789"
    s = Settings(chatadmin_secret_key=key, chatadmin_data_dir=tmp_path, _env_file=None)
    assert s.secret_key() == key
    assert not (tmp_path / "secret_key").exists()


def test_secret_key_is_generated_once_per_data_dir(clean_env, tmp_path):
    data_dir = tmp_path / "data"
    first = Settings(chatadmin_data_dir=data_dir, _env_file=None)
    assert first.embedded and first.chatadmin_secret_key is None
    key = first.secret_key()
    path = data_dir / "secret_key"
    assert path.read_text().strip() == key
    assert len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.secret_key() == key
    assert Settings(chatadmin_data_dir=data_dir, _env_file=None).secret_key() == key
    other = Settings(chatadmin_data_dir=tmp_path / "other", _env_file=None).secret_key()
    assert other != key


def test_secret_key_is_required_with_an_external_mongodb(clean_env, tmp_path):
    s = Settings(
        mongodb_uri="mongodb://db.example:27017", chatadmin_data_dir=tmp_path, _env_file=None
    )
    assert not s.embedded
    with pytest.raises(ConfigError, match="CHATADMIN_SECRET_KEY must be set"):
        s.secret_key()
    with pytest.raises(ConfigError):
        create_app(s)
    assert not (tmp_path / "secret_key").exists()
    debug = s.model_copy(update={"chatadmin_debug": True})
    assert debug.secret_key() == (tmp_path / "secret_key").read_text().strip()
