"""/api/v1 shares: POST /threads/{id}/share, the public GET /share/{share_id} (no key, no org or
user ids), 404 once revoked, expired or unknown, and DELETE /share/{share_id} (scope `share`)."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from chatadmin.clock import now_ms
from chatadmin.models import AuditLog, SharedThread
from tests.api.helpers import db_state, error, fields

pytestmark = pytest.mark.usefixtures("database")

API = "/api/v1"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
ORG = "org-hidden-7"
OWNER = "user-hidden-42"
JSON = {"content-type": "application/json"}
HOSTILE = {"$gt": 1, "a.b": {"$where": ["x", {"c.d": None}]}}
PUBLIC_KEYS = {"share_id", "thread", "messages", "created_at", "expires_at"}


def all_keys(value) -> set[str]:
    """Every object key anywhere in a JSON value."""
    keys, stack = set(), [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            keys |= set(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return keys


@pytest.fixture
async def keys(make_key):
    """org ORG: a writer, a sharer without `share` for contrast, and org-b's full key."""
    return {
        "writer": await make_key(ORG, "ingest", "read", "share"),
        "no_share": await make_key(ORG, "ingest", "read"),
        "other": await make_key("org-b", "ingest", "read", "share", "admin"),
    }


@pytest.fixture
async def thread(client, keys):
    """A thread of ORG with three messages (one with hostile tool input)."""
    h = keys["writer"]
    r = await client.post(
        f"{API}/threads",
        json={"thread_id": "t1", "user_id": OWNER, "title": "Shared talk", "tags": ["x"],
              "metadata": {"private": "do not leak"}},
        headers=h,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    bodies = [
        {"role": "user", "content": "What is the volatility of AAPL?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "tu1", "name": "prices", "input": HOSTILE},
        ], "ai_metadata": {"model": "m", "total_tokens": 5}},
        {"role": "user", "content": "thanks", "metadata": {"secret": True}},
    ]  # fmt: skip
    for body in bodies:
        r = await client.post(f"{API}/threads/t1/messages", json=body, headers=h)
        assert r.status_code == 201, r.text
    return "t1"


async def share(client, h, thread_id="t1", **body) -> dict:
    r = await client.post(f"{API}/threads/{thread_id}/share", json=body, headers=h)
    assert r.status_code == 201, r.text
    return r.json()


# -- create ------------------------------------------------------------------------------------


async def test_create_share_201_with_id_url_and_expiry(client, keys, thread, settings):
    start = datetime.now(UTC)
    out = await share(client, keys["writer"], expires_in_seconds=3600)
    assert set(out) == {"share_id", "url", "expires_at"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", out["share_id"])  # 256 random bits
    assert (
        out["url"] == f"{settings.chatadmin_public_url.rstrip('/')}/api/v1/share/{out['share_id']}"
    )
    assert ISO_MS.match(out["expires_at"])
    expires = datetime.fromisoformat(out["expires_at"])
    assert timedelta(seconds=3590) < expires - start < timedelta(seconds=3610)

    stored = await SharedThread.find_one({"share_id": out["share_id"]})
    assert stored.org_id == ORG and stored.thread_id == "t1" and stored.revoked is False
    audit = await AuditLog.find_one({"org_id": ORG, "action": "thread_shared"})
    assert audit.resource_type == "share" and audit.resource_id == out["share_id"]
    assert audit.actor_type == "api_key"

    second = await share(client, keys["writer"])  # every share gets its own id
    assert second["share_id"] != out["share_id"]
    assert await SharedThread.find({"org_id": ORG}).count() == 2


async def test_share_without_expiry_never_expires(client, keys, thread):
    r = await client.post(f"{API}/threads/t1/share", headers=keys["writer"])  # no body at all
    assert r.status_code == 201, r.text
    assert r.json()["expires_at"] is None
    assert (await share(client, keys["writer"]))["expires_at"] is None  # `{}`
    r = await client.get(urlsplit(r.json()["url"]).path)
    assert r.status_code == 200 and r.json()["expires_at"] is None


async def test_create_share_errors_write_nothing(client, keys, thread, make_key):
    h = keys["writer"]
    before = await db_state()
    for body, field in [
        ({"expires_in_seconds": 59}, "expires_in_seconds"),
        ({"expires_in_seconds": 0}, "expires_in_seconds"),
        ({"expires_in_seconds": -5}, "expires_in_seconds"),
        ({"expires_in_seconds": 366 * 24 * 3600 + 1}, "expires_in_seconds"),
        ({"expires_in_seconds": "3600"}, "expires_in_seconds"),
        ({"expires_in_seconds": 3600.5}, "expires_in_seconds"),
        ({"expires_in_seconds": {"$gt": 0}}, "expires_in_seconds"),
        ({"thread_id": "t2"}, "thread_id"),
    ]:
        r = await client.post(f"{API}/threads/t1/share", json=body, headers=h)
        assert field in fields(error(r, 422, "invalid")), body
    for content, headers, status in [
        (b'{"expires_in_seconds": 3600}', {"content-type": "text/plain"}, 415),
        (b'{"expires_in_seconds": 3600}', {}, 415),
        (b'{"expires_in_seconds": ', JSON, 400),
        (b"[3600]", JSON, 422),
    ]:
        r = await client.post(f"{API}/threads/t1/share", content=content, headers={**h, **headers})
        error(r, status)
    for thread_id in ["nope", "%24ne", "x" * 200]:
        error(await client.post(f"{API}/threads/{thread_id}/share", json={}, headers=h), 404)
    # Another org's thread does not exist for org-b, whatever its scopes.
    err = error(await client.post(f"{API}/threads/t1/share", json={}, headers=keys["other"]), 404)
    assert err["code"] == "not_found"
    # Scope and key.
    r = await client.post(f"{API}/threads/t1/share", json={}, headers=keys["no_share"])
    error(r, 403, "forbidden")
    for headers in [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Token x"}]:
        r = await client.post(f"{API}/threads/t1/share", json={}, headers=headers)
        error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
    assert await db_state() == before
    # `admin` implies `share`.
    await share(client, await make_key(ORG, "admin"))


async def test_deleted_thread_cannot_be_shared(client, keys, thread):
    assert (await client.delete(f"{API}/threads/t1", headers=keys["writer"])).status_code == 204
    before = await db_state()
    error(await client.post(f"{API}/threads/t1/share", json={}, headers=keys["writer"]), 404)
    assert await db_state() == before


# -- public read -------------------------------------------------------------------------------


async def test_public_read_needs_no_key_and_hides_org_and_user_ids(client, keys, thread):
    created = await share(client, keys["writer"], expires_in_seconds=600)
    r = await client.get(f"{API}/share/{created['share_id']}")  # no Authorization at all
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == PUBLIC_KEYS
    assert body["share_id"] == created["share_id"]
    assert body["expires_at"] == created["expires_at"]
    assert ISO_MS.match(body["created_at"])
    assert body["thread"]["thread_id"] == "t1" and body["thread"]["title"] == "Shared talk"
    assert body["thread"]["message_count"] == 3
    messages = body["messages"]
    assert [m["seq"] for m in messages] == [0, 1, 2]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == [{"type": "text", "text": "What is the volatility of AAPL?"}]
    assert messages[1]["content"][1]["input"] == HOSTILE  # free-form keys restored exactly

    keys_seen = all_keys(body)
    assert "org_id" not in keys_seen and "user_id" not in keys_seen
    assert ORG not in r.text and OWNER not in r.text
    assert "do not leak" not in r.text and "secret" not in r.text  # metadata stays private

    # The url returned at creation is the public address.
    again = await client.get(urlsplit(created["url"]).path)
    assert again.status_code == 200 and again.json() == body


async def test_share_is_a_snapshot(client, keys, thread):
    created = await share(client, keys["writer"])
    r = await client.post(f"{API}/threads/t1/messages", json={"role": "user", "content": "later"},
                          headers=keys["writer"])  # fmt: skip
    assert r.status_code == 201
    r = await client.post(f"{API}/threads/t1/name", json={"name": "Renamed"},
                          headers=keys["writer"])  # fmt: skip
    assert r.status_code == 200
    body = (await client.get(f"{API}/share/{created['share_id']}")).json()
    assert len(body["messages"]) == 3 and body["thread"]["title"] == "Shared talk"


async def test_revoked_share_is_404(client, keys, thread):
    created = await share(client, keys["writer"])
    keep = await share(client, keys["writer"])
    sid = created["share_id"]
    r = await client.delete(f"{API}/share/{sid}", headers=keys["writer"])
    assert r.status_code == 204 and r.content == b""
    error(await client.get(f"{API}/share/{sid}"), 404, "not_found")
    error(await client.get(f"{API}/share/{sid}", headers=keys["writer"]), 404, "not_found")
    before = await db_state()
    error(await client.delete(f"{API}/share/{sid}", headers=keys["writer"]), 404, "not_found")
    assert await db_state() == before
    stored = await SharedThread.find_one({"share_id": sid})
    assert stored.revoked is True and stored.revoked_at is not None
    audit = await AuditLog.find_one({"org_id": ORG, "action": "share_revoked"})
    assert audit.resource_id == sid and audit.actor_type == "api_key"
    # Other shares of the thread are not affected.
    assert (await client.get(f"{API}/share/{keep['share_id']}")).status_code == 200


async def test_expired_share_is_404(client, keys, thread):
    expiring = await share(client, keys["writer"], expires_in_seconds=3600)
    live = await share(client, keys["writer"], expires_in_seconds=3600)
    assert (await client.get(f"{API}/share/{expiring['share_id']}")).status_code == 200
    result = await SharedThread.get_pymongo_collection().update_one(
        {"share_id": expiring["share_id"]}, {"$set": {"expires_at_ms": now_ms() - 1000}}
    )
    assert result.modified_count == 1
    error(await client.get(f"{API}/share/{expiring['share_id']}"), 404, "not_found")
    assert (await client.get(f"{API}/share/{live['share_id']}")).status_code == 200


UNKNOWN_SHARE_IDS = [
    "A" * 43,  # well-formed, never issued
    "abc",  # too short
    "x" * 129,  # too long
    "%24ne%24ne%24ne%24ne%24ne%24ne",  # "$ne..." operators
    "%7B%22%24gt%22%3A%22%22%7D",  # '{"$gt":""}'
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%C3%A9" * 20,
    "aaaaaaaaaaaaaaaa%00bbbb",
    "share id with spaces 0000",
]


async def test_unknown_and_garbage_share_ids_are_404(client, keys, thread):
    await share(client, keys["writer"])
    before = await db_state()
    for share_id in UNKNOWN_SHARE_IDS:
        error(await client.get(f"{API}/share/{share_id}"), 404, "not_found")
        r = await client.delete(f"{API}/share/{share_id}", headers=keys["writer"])
        error(r, 404, "not_found")
    assert await db_state() == before


# -- revoke: scope, key and org -----------------------------------------------------------------


async def test_revoke_needs_a_key_with_the_share_scope(client, keys, thread, make_key):
    sid = (await share(client, keys["writer"]))["share_id"]
    before = await db_state()
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}]:
        r = await client.delete(f"{API}/share/{sid}", headers=headers)
        error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
    error(await client.delete(f"{API}/share/{sid}", headers=keys["no_share"]), 403, "forbidden")
    assert await db_state() == before
    assert (await client.get(f"{API}/share/{sid}")).status_code == 200
    # `admin` implies `share`.
    r = await client.delete(f"{API}/share/{sid}", headers=await make_key(ORG, "admin"))
    assert r.status_code == 204
    error(await client.get(f"{API}/share/{sid}"), 404)


async def test_another_org_cannot_revoke_a_share(client, keys, thread):
    sid = (await share(client, keys["writer"]))["share_id"]
    before = await db_state()
    error(await client.delete(f"{API}/share/{sid}", headers=keys["other"]), 404, "not_found")
    assert await db_state() == before
    assert (await client.get(f"{API}/share/{sid}")).status_code == 200
    assert (await SharedThread.find_one({"share_id": sid})).revoked is False


async def test_wrong_methods_are_405(client, keys, thread):
    sid = (await share(client, keys["writer"]))["share_id"]
    before = await db_state()
    for method, path in [
        ("PUT", f"/share/{sid}"),
        ("POST", f"/share/{sid}"),
        ("PATCH", f"/share/{sid}"),
        ("GET", "/threads/t1/share"),
        ("DELETE", "/threads/t1/share"),
    ]:
        r = await client.request(method, API + path, json={}, headers=keys["writer"])
        error(r, 405, "method_not_allowed")
    assert await db_state() == before
    assert (await client.get(f"{API}/share/{sid}")).status_code == 200
