"""Helpers shared by the API test modules: the JSON error shape and database snapshots."""

import asyncio
import re

from chatadmin.models import DOCUMENT_MODELS, ApiKey, MigrationRecord


def error(r, status: int, code: str | None = None) -> dict:
    """The JSON error of a response, checked for shape; returns `error`."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.text}"
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"code", "message", "details"}
    assert re.fullmatch(r"[a-z][a-z0-9_]*", err["code"])
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["details"], list)
    if code is not None:
        assert err["code"] == code
    return err


def fields(err: dict) -> set[str]:
    return {d["field"] for d in err["details"]}


async def db_state() -> dict:
    """Every document of every collection (API keys record their use: left out)."""
    models = [m for m in DOCUMENT_MODELS if m not in (ApiKey, MigrationRecord)]
    found = await asyncio.gather(
        *(m.get_pymongo_collection().find({}).sort("_id", 1).to_list() for m in models)
    )
    return {m.Settings.name: docs for m, docs in zip(models, found, strict=True)}
