"""Edge cases found while testing the API, pinned after their fixes."""

import base64
import json
import re

import pytest

from chatadmin.models import AuditLog, Thread
from chatadmin.models.jsonfield import MAX_DEPTH

pytestmark = pytest.mark.usefixtures("database")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def nested(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"n": value}
    return value


async def test_deep_metadata_at_the_limit_is_stored_and_audited(client, make_key):
    h = await make_key()
    body = {"user_id": "u1", "thread_id": "deep", "metadata": nested(MAX_DEPTH)}
    r = await client.post("/api/v1/threads", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert await AuditLog.find({"resource_id": "deep"}).count() == 1
    got = await client.get("/api/v1/threads/deep", headers=h)
    assert got.json()["thread"]["metadata"] == nested(MAX_DEPTH)
    too_deep = {**body, "thread_id": "deeper", "metadata": nested(MAX_DEPTH + 1)}
    r = await client.post("/api/v1/threads", json=too_deep, headers=h)
    assert r.status_code == 422
    assert await Thread.find({"thread_id": "deeper"}).count() == 0


async def test_context_with_zero_counts_is_empty(client, make_key):
    h = await make_key()
    await client.post("/api/v1/threads", json={"user_id": "u1", "thread_id": "t"}, headers=h)
    await client.post("/api/v1/threads/t/messages", json={"role": "user", "content": "a"},
                      headers=h)  # fmt: skip
    r = await client.get("/api/v1/threads/t/context?messages=0&analyses=0", headers=h)
    assert r.status_code == 200
    assert r.json()["recent_messages"] == [] and r.json()["recent_analyses"] == []


@pytest.mark.parametrize("payload", [{"seq": 10**20}, {"seq": -(10**20)}])
async def test_cursor_with_huge_integers_is_422(client, make_key, payload):
    h = await make_key()
    await client.post("/api/v1/threads", json={"user_id": "u1", "thread_id": "t"}, headers=h)
    cursor = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    r = await client.get(f"/api/v1/threads/t?cursor={cursor}", headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "cursor"


async def test_dates_out_of_range_are_422_not_500(client, make_key):
    h = await make_key()
    body = {"user_id": "u1", "created_at": "0001-01-01T00:00:00+14:00"}
    r = await client.post("/api/v1/threads", json=body, headers=h)
    assert r.status_code == 422
    assert await Thread.find({}).count() == 0


async def test_shared_snapshot_uses_the_api_datetime_format(client, make_key):
    h = await make_key("org-a", "ingest", "read", "share")
    await client.post("/api/v1/threads", json={"user_id": "u1", "thread_id": "t"}, headers=h)
    await client.post("/api/v1/threads/t/messages", json={"role": "user", "content": "hi"},
                      headers=h)  # fmt: skip
    share = (await client.post("/api/v1/threads/t/share", headers=h)).json()
    public = (await client.get(f"/api/v1/share/{share['share_id']}")).json()
    assert ISO_MS.match(public["thread"]["created_at"])
    assert ISO_MS.match(public["thread"]["last_message_at"])
    assert ISO_MS.match(public["messages"][0]["created_at"])
    assert "org_id" not in json.dumps(public) and "user_id" not in json.dumps(public)


async def test_wrong_method_lists_every_allowed_method(client, make_key):
    h = await make_key()
    r = await client.put("/api/v1/threads", headers=h)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert {m.strip() for m in r.headers["allow"].split(",")} >= {"GET", "POST"}
    r = await client.patch("/api/v1/saved-analyses/s1", headers=h)
    assert {m.strip() for m in r.headers["allow"].split(",")} >= {"GET", "DELETE"}


async def test_invalid_feedback_and_names_name_the_field(client, make_key):
    h = await make_key()
    await client.post("/api/v1/threads", json={"user_id": "u1", "thread_id": "t"}, headers=h)
    r = await client.post("/api/v1/threads/t/name", json={"name": "   "}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "name"
    r = await client.get("/api/v1/users/u1/questions?query_type=bogus", headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "query_type"
    bad = {"role": "user", "content": [{"type": "text", "text": 5}]}
    r = await client.post("/api/v1/threads/t/messages", json=bad, headers=h)
    # content.<index>.<block type>.<field>
    assert [d["field"] for d in r.json()["error"]["details"]] == ["content.0.text.text"]
