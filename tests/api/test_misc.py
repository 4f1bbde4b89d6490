"""/api/v1 cache, users (with question history), message feedback, the audit trail of API writes,
the OpenAPI document and the docs page."""

import asyncio
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin, urlsplit

import pytest

from chatadmin.api import ENDPOINTS
from chatadmin.clock import now_ms
from chatadmin.models import (
    AuditLog,
    CacheEntry,
    Message,
    User,
)
from tests.api.helpers import db_state, error, fields

pytestmark = pytest.mark.usefixtures("database")

API = "/api/v1"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
JSON = {"content-type": "application/json"}
HOSTILE = {"$gt": 1, "a.b": {"$where": ["x", {"c.d": None}]}, "ü": "\u2603"}
USER_KEYS = {
    "user_id", "org_id", "email", "username", "display_name", "role", "preferences", "metadata",
    "last_login", "message_count", "thread_count", "last_active_at", "created_at", "updated_at",
}  # fmt: skip
MESSAGE_KEYS = {
    "message_id", "thread_id", "user_id", "seq", "role", "content", "text", "question_context",
    "analysis_id", "analysis", "ai_metadata", "execution_id", "execution_status", "status",
    "feedback", "created_at", "updated_at", "metadata",
}  # fmt: skip
AUDIT_KEYS = {
    "audit_id", "actor_type", "actor_id", "action", "resource_type", "resource_id", "before",
    "after", "changes", "ip_address", "user_agent", "success", "error_message", "created_at",
    "metadata", "source", "source_key_id",
}  # fmt: skip
NOT_JSON_BODIES = [
    (b'{"question": "q"}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
    (b'{"question": "q"}', {}, 415, "unsupported_media_type"),
    (b'{"question": ', JSON, 400, "bad_request"),
    (b"", JSON, 400, "bad_request"),
    (b'{"question": -Infinity}', JSON, 400, "bad_request"),
    (b'["question"]', JSON, 422, "invalid"),
]


def key_id(headers: dict) -> str:
    """The public id of an API key (`ca_<key_id>_<secret>`)."""
    return headers["Authorization"].removeprefix("Bearer ").split("_", 2)[1]


async def auth_errors(client, method, path, body, lacking):
    """401 (with WWW-Authenticate) without or with a wrong key, 403 with `lacking`."""
    for headers in [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic eDp5"},
        {"Authorization": "Bearer ca_0123456789abcdef_secret"},
    ]:
        r = await client.request(method, API + path, json=body, headers=headers)
        error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
    error(await client.request(method, API + path, json=body, headers=lacking), 403, "forbidden")


@pytest.fixture
async def h(make_key):
    return await make_key("org-a", "ingest", "read")


@pytest.fixture
async def other(make_key):
    return await make_key("org-b", "ingest", "read", "share", "admin")


# -- cache -------------------------------------------------------------------------------------


async def test_cache_put_then_lookup_hit_and_miss(client, h, other):
    params = {"ticker": "AAPL", "window": 30, "opts": {"b": [1, {"y": 2, "x": 1}], "a": None}}
    result = {"rows": [{"$sum": 3, "a.b": [1.5, None]}], "note": "ok"}
    start = datetime.now(UTC)
    r = await client.put(
        f"{API}/cache",
        headers=h,
        json={
            "question": "What is the volatility of AAPL?",
            "parameters": params,
            "result": result,
            "ttl_seconds": 600,
        },
    )
    assert r.status_code == 200, r.text
    stored = r.json()
    assert set(stored) == {"cache_key", "expires_at"}
    assert re.fullmatch(r"[0-9a-f]{64}", stored["cache_key"])
    assert ISO_MS.match(stored["expires_at"])
    ttl = datetime.fromisoformat(stored["expires_at"]) - start
    assert timedelta(seconds=590) < ttl < timedelta(seconds=610)

    # The same question (case and spacing aside) and parameters in any key order: a hit.
    reordered = {"opts": {"a": None, "b": [1, {"x": 1, "y": 2}]}, "window": 30, "ticker": "AAPL"}
    for question, parameters in [
        ("What is the volatility of AAPL?", params),
        ("  what is THE volatility   of aapl? ", reordered),
    ]:
        r = await client.post(
            f"{API}/cache/lookup", headers=h, json={"question": question, "parameters": parameters}
        )
        assert r.status_code == 200, r.text
        hit = r.json()
        assert hit["hit"] is True and hit["result"] == result
        assert hit["cache_key"] == stored["cache_key"]
    assert hit["hit_count"] == 2

    # Anything else is a miss, answered as exactly {"hit": false}.
    for body in [
        {"question": "What is the volatility of AAPL?", "parameters": {**params, "window": 31}},
        {"question": "What is the volatility of AAPL?"},
        {"question": "What is the volatility of MSFT?", "parameters": params},
        {"question": "What is the volatility of AAPL?", "parameters": {"$gt": ""}},
    ]:
        r = await client.post(f"{API}/cache/lookup", json=body, headers=h)
        assert r.status_code == 200 and r.json() == {"hit": False}, body
    # Another org has its own cache.
    r = await client.post(
        f"{API}/cache/lookup",
        headers=other,
        json={"question": "What is the volatility of AAPL?", "parameters": params},
    )
    assert r.json() == {"hit": False}

    # Putting again replaces the result under the same key.
    r = await client.put(
        f"{API}/cache",
        headers=h,
        json={
            "question": "what is the volatility of aapl?",
            "parameters": reordered,
            "result": [1, "two"],
        },
    )
    assert r.status_code == 200 and r.json()["cache_key"] == stored["cache_key"]
    default_ttl = datetime.fromisoformat(r.json()["expires_at"]) - start
    assert timedelta(hours=23, minutes=59) < default_ttl < timedelta(hours=24, minutes=1)
    r = await client.post(
        f"{API}/cache/lookup",
        headers=h,
        json={"question": "What is the volatility of AAPL?", "parameters": params},
    )
    assert r.json()["result"] == [1, "two"]
    assert await CacheEntry.find({"org_id": "org-a"}).count() == 1
    audits = await AuditLog.find({"org_id": "org-a", "action": "cache_stored"}).to_list()
    assert len(audits) == 2 and {a.resource_id for a in audits} == {stored["cache_key"]}


async def test_expired_cache_entry_is_a_miss(client, h):
    for question in ("old", "fresh"):
        r = await client.put(
            f"{API}/cache", json={"question": question, "result": question}, headers=h
        )
        assert r.status_code == 200
    await CacheEntry.get_pymongo_collection().update_one(
        {"question": "old"}, {"$set": {"expires_at_ms": now_ms() - 1000}}
    )
    r = await client.post(f"{API}/cache/lookup", json={"question": "old"}, headers=h)
    assert r.json() == {"hit": False}
    r = await client.post(f"{API}/cache/lookup", json={"question": "fresh"}, headers=h)
    assert r.json()["hit"] is True and r.json()["result"] == "fresh"


async def test_cache_errors_write_nothing(client, h, make_key):
    r = await client.put(f"{API}/cache", json={"question": "q", "result": 1}, headers=h)
    assert r.status_code == 200
    before = await db_state()
    for body, field in [
        ({}, "question"),
        ({"question": ""}, "question"),
        ({"question": 5}, "question"),
        ({"question": "x" * 10_001}, "question"),
        ({"question": "q", "ttl_seconds": 0}, "ttl_seconds"),
        ({"question": "q", "ttl_seconds": 365 * 24 * 3600 + 1}, "ttl_seconds"),
        ({"question": "q", "ttl_seconds": "60"}, "ttl_seconds"),
        ({"question": "q", "parameters": []}, "parameters"),
        ({"question": "q", "parameters": {"\ue003": 1}}, "parameters"),
        ({"question": "q", "analysis_id": "$x"}, "analysis_id"),
        ({"question": "q", "cache_key": "0" * 64}, "cache_key"),
    ]:
        r = await client.put(f"{API}/cache", json=body, headers=h)
        assert field in fields(error(r, 422, "invalid")), body
    for body, field in [
        ({}, "question"),
        ({"question": {"$ne": ""}}, "question"),
        ({"question": "q", "parameters": "x"}, "parameters"),
        ({"question": "q", "result": 1}, "result"),
    ]:
        r = await client.post(f"{API}/cache/lookup", json=body, headers=h)
        assert field in fields(error(r, 422, "invalid")), body
    for method, path in [("PUT", "/cache"), ("POST", "/cache/lookup")]:
        for content, headers, status, code in NOT_JSON_BODIES:
            r = await client.request(method, API + path, content=content, headers={**h, **headers})
            error(r, status, code)
    await auth_errors(client, "PUT", "/cache", {"question": "q"}, await make_key("org-a", "read"))
    await auth_errors(
        client, "POST", "/cache/lookup", {"question": "q"}, await make_key("org-a", "ingest")
    )
    for method, path in [
        ("GET", "/cache"),
        ("POST", "/cache"),
        ("DELETE", "/cache"),
        ("GET", "/cache/lookup"),
        ("PUT", "/cache/lookup"),
    ]:
        error(await client.request(method, API + path, headers=h), 405, "method_not_allowed")
    assert await db_state() == before


# -- users -------------------------------------------------------------------------------------


async def test_put_user_creates_201_then_updates_200(client, h):
    body = {
        "email": "Ann@X.example",
        "username": "ann",
        "display_name": "Ann",
        "role": "leader",
        "preferences": HOSTILE,
        "metadata": {"team": {"name": "risk", "$id": 7}},
        "last_login": "2024-05-01T12:00:00.5+02:00",
    }
    r = await client.put(f"{API}/users/u1", json=body, headers=h)
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == USER_KEYS
    assert created["user_id"] == "u1" and created["org_id"] == "org-a"
    for name in ("email", "username", "display_name", "role", "preferences", "metadata"):
        assert created[name] == body[name], name
    assert created["last_login"] == "2024-05-01T10:00:00.500+00:00"
    assert created["message_count"] == 0 and created["thread_count"] == 0
    assert created["last_active_at"] is None
    assert ISO_MS.match(created["created_at"]) and ISO_MS.match(created["updated_at"])

    r = await client.put(f"{API}/users/u1", json={"display_name": "Ann A."}, headers=h)
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["display_name"] == "Ann A."
    assert {k: v for k, v in updated.items() if k not in ("display_name", "updated_at")} == {
        k: v for k, v in created.items() if k not in ("display_name", "updated_at")
    }
    assert updated["updated_at"] >= created["updated_at"]
    r = await client.get(f"{API}/users/u1", headers=h)
    assert r.status_code == 200 and r.json() == updated
    assert await User.find({"org_id": "org-a"}).count() == 1

    audits = await AuditLog.find({"org_id": "org-a", "resource_id": "u1"}).to_list()
    by_action = {a.action: a for a in audits}
    assert set(by_action) == {"user_created", "user_updated"}
    assert by_action["user_created"].before is None
    assert by_action["user_updated"].before["display_name"] == "Ann"
    assert by_action["user_updated"].after["display_name"] == "Ann A."

    # A user's counters follow their threads and messages.
    r = await client.post(f"{API}/threads", json={"thread_id": "t1", "user_id": "u1"}, headers=h)
    assert r.status_code == 201
    r = await client.post(
        f"{API}/threads/t1/messages", json={"role": "user", "content": "x"}, headers=h
    )
    assert r.status_code == 201
    r = await client.get(f"{API}/users/u1", headers=h)
    assert r.json()["thread_count"] == 1 and r.json()["message_count"] == 1
    assert ISO_MS.match(r.json()["last_active_at"])


async def test_user_errors_and_isolation(client, h, other, make_key):
    r = await client.put(
        f"{API}/users/u1", json={"email": "ann@x.example", "username": "ann"}, headers=h
    )
    assert r.status_code == 201
    before = await db_state()
    for body, field in [
        ({"email": "not-an-email"}, "email"),
        ({"email": 5}, "email"),
        ({"role": "god"}, "role"),
        ({"username": 5}, "username"),
        ({"username": "x" * 201}, "username"),
        ({"preferences": []}, "preferences"),
        ({"metadata": {"\ue001": 1}}, "metadata"),
        ({"last_login": "yesterday"}, "last_login"),
        ({"user_id": "u9"}, "user_id"),
        ({"message_count": 5}, "message_count"),
    ]:
        r = await client.put(f"{API}/users/u1", json=body, headers=h)
        assert field in fields(error(r, 422, "invalid")), body
    for content, headers, status, code in NOT_JSON_BODIES:
        r = await client.put(f"{API}/users/u1", content=content, headers={**h, **headers})
        error(r, status, code)
    # Another user's email (case aside) is a conflict, on create and on update.
    r = await client.put(f"{API}/users/u2", json={"email": "ANN@x.example"}, headers=h)
    error(r, 409, "conflict")
    for user_id in ["%24ne", "a%20b", "x" * 200]:
        error(await client.put(f"{API}/users/{user_id}", json={}, headers=h), 404, "not_found")
        error(await client.get(f"{API}/users/{user_id}", headers=h), 404, "not_found")
    error(await client.get(f"{API}/users/nope", headers=h), 404, "not_found")
    error(await client.get(f"{API}/users/u1", headers=other), 404, "not_found")
    await auth_errors(
        client, "PUT", "/users/u1", {"username": "x"}, await make_key("org-a", "read")
    )
    await auth_errors(client, "GET", "/users/u1", None, await make_key("org-a", "ingest"))
    await auth_errors(client, "GET", "/users/u1/questions", None, await make_key("org-a", "ingest"))
    for method, path in [
        ("POST", "/users/u1"),
        ("DELETE", "/users/u1"),
        ("PATCH", "/users/u1"),
        ("POST", "/users/u1/questions"),
    ]:
        error(await client.request(method, API + path, json={}, headers=h), 405)
    assert await db_state() == before

    # org-b's PUT of the same id makes org-b's own user and leaves org-a's alone.
    r = await client.put(f"{API}/users/u1", json={"username": "bee"}, headers=other)
    assert r.status_code == 201 and r.json()["org_id"] == "org-b"
    r = await client.get(f"{API}/users/u1", headers=h)
    assert r.json()["username"] == "ann" and r.json()["email"] == "ann@x.example"


async def test_question_history_filters_and_pages(client, h, other):
    r = await client.post(f"{API}/threads", json={"thread_id": "t1", "user_id": "u1"}, headers=h)
    assert r.status_code == 201
    r = await client.post(f"{API}/threads", json={"thread_id": "t2", "user_id": "u1"}, headers=h)
    assert r.status_code == 201
    r = await client.post(f"{API}/threads", json={"thread_id": "t3", "user_id": "u2"}, headers=h)
    assert r.status_code == 201
    specs = [
        ("q1", "t1", "user", "complete"),
        ("a1", "t1", "assistant", None),
        ("q2", "t1", "user", "comparative"),
        ("q3", "t2", "user", "comparative"),
        ("q4", "t2", "user", None),
        ("x1", "t3", "user", "comparative"),  # another user's question
    ]
    for i, (message_id, thread_id, role, query_type) in enumerate(specs):
        body = {
            "message_id": message_id,
            "role": role,
            "content": f"question {message_id}",
            "created_at": f"2024-05-01T10:00:0{i}.000+00:00",
        }
        if query_type:
            body["question_context"] = {"original_question": message_id, "query_type": query_type}
        r = await client.post(f"{API}/threads/{thread_id}/messages", json=body, headers=h)
        assert r.status_code == 201, r.text

    async def ids(**params):
        r = await client.get(f"{API}/users/u1/questions", params=params, headers=h)
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"items", "next_cursor"}
        for item in r.json()["items"]:
            assert set(item) == MESSAGE_KEYS and item["role"] == "user"
            assert ISO_MS.match(item["created_at"])
        return [m["message_id"] for m in r.json()["items"]]

    assert await ids() == ["q4", "q3", "q2", "q1"]  # newest first, questions only
    assert await ids(query_type="comparative") == ["q3", "q2"]
    assert await ids(query_type="complete") == ["q1"]
    assert await ids(thread_id="t1") == ["q2", "q1"]
    r = await client.get(
        f"{API}/users/u1/questions", params={"query_type": "comparative"}, headers=h
    )
    item = r.json()["items"][0]
    assert item["question_context"] == {
        "original_question": "q3",
        "expanded_question": None,
        "expansion_confidence": 0.0,
        "query_type": "comparative",
    }

    pages, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        r = await client.get(f"{API}/users/u1/questions", params=params, headers=h)
        assert r.status_code == 200, r.text
        pages.append([m["message_id"] for m in r.json()["items"]])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == [["q4", "q3", "q2"], ["q1"]]
    r = await client.get(
        f"{API}/users/u1/questions", params={"limit": 1, "query_type": "comparative"}, headers=h
    )
    r = await client.get(
        f"{API}/users/u1/questions",
        headers=h,
        params={"limit": 1, "query_type": "comparative", "cursor": r.json()["next_cursor"]},
    )
    assert [m["message_id"] for m in r.json()["items"]] == ["q2"]

    r = await client.get(f"{API}/users/u1/questions", headers=other)
    assert r.json() == {"items": [], "next_cursor": None}
    for query, field in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=201", "limit"),
        ("thread_id=%24ne", "thread_id"),
        ("query_type=" + "x" * 51, "query_type"),
        ("role=assistant", "role"),
    ]:
        r = await client.get(f"{API}/users/u1/questions?{query}", headers=h)
        assert field in fields(error(r, 422, "invalid")), query
    for query in ["query_type=bogus", "cursor=garbage!"]:
        error(await client.get(f"{API}/users/u1/questions?{query}", headers=h), 422, "invalid")


# -- feedback ----------------------------------------------------------------------------------


async def test_feedback_is_set_and_replaced(client, h):
    r = await client.post(f"{API}/threads", json={"thread_id": "t1", "user_id": "u1"}, headers=h)
    assert r.status_code == 201
    r = await client.post(
        f"{API}/threads/t1/messages",
        json={"message_id": "m1", "role": "assistant", "content": "answer"},
        headers=h,
    )
    assert r.status_code == 201
    r = await client.post(
        f"{API}/messages/m1/feedback",
        json={"is_helpful": True, "rating": 5, "comment": "great"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == MESSAGE_KEYS and out["message_id"] == "m1"
    fb = out["feedback"]
    assert set(fb) == {"is_helpful", "rating", "comment", "submitted_at"}
    assert (fb["is_helpful"], fb["rating"], fb["comment"]) == (True, 5, "great")
    assert ISO_MS.match(fb["submitted_at"])
    r = await client.get(f"{API}/threads/t1", headers=h)
    assert r.json()["messages"][0]["feedback"] == fb

    r = await client.post(f"{API}/messages/m1/feedback", json={"is_helpful": False}, headers=h)
    assert r.status_code == 200
    assert r.json()["feedback"]["is_helpful"] is False and r.json()["feedback"]["rating"] is None
    stored = await Message.find_one({"org_id": "org-a", "message_id": "m1"})
    assert stored.feedback.is_helpful is False and stored.feedback.comment is None
    audits = await AuditLog.find({"org_id": "org-a", "action": "feedback_set"}).to_list()
    assert len(audits) == 2 and {a.resource_id for a in audits} == {"m1"}


async def test_feedback_errors_write_nothing(client, h, other, make_key):
    r = await client.post(f"{API}/threads", json={"thread_id": "t1", "user_id": "u1"}, headers=h)
    assert r.status_code == 201
    r = await client.post(
        f"{API}/threads/t1/messages",
        json={"message_id": "m1", "role": "assistant", "content": "answer"},
        headers=h,
    )
    assert r.status_code == 201
    before = await db_state()
    for body, field in [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": "5"}, "rating"),
        ({"rating": 4.5}, "rating"),
        ({"is_helpful": "yes"}, "is_helpful"),
        ({"comment": "x" * 5001}, "comment"),
        ({"is_helpful": True, "score": 1}, "score"),
    ]:
        r = await client.post(f"{API}/messages/m1/feedback", json=body, headers=h)
        assert field in fields(error(r, 422, "invalid")), body
    error(await client.post(f"{API}/messages/m1/feedback", json={}, headers=h), 422, "invalid")
    for content, headers, status, code in NOT_JSON_BODIES:
        r = await client.post(
            f"{API}/messages/m1/feedback", content=content, headers={**h, **headers}
        )
        error(r, status, code)
    for message_id in ["nope", "%24ne", "x" * 200]:
        r = await client.post(
            f"{API}/messages/{message_id}/feedback", json={"rating": 1}, headers=h
        )
        error(r, 404, "not_found")
    r = await client.post(f"{API}/messages/m1/feedback", json={"rating": 1}, headers=other)
    error(r, 404, "not_found")
    await auth_errors(
        client,
        "POST",
        "/messages/m1/feedback",
        {"rating": 1},
        await make_key("org-a", "read", "share"),
    )
    error(await client.get(f"{API}/messages/m1/feedback", headers=h), 405, "method_not_allowed")
    assert await db_state() == before
    assert (await Message.find_one({"message_id": "m1"})).feedback is None


# -- audit -------------------------------------------------------------------------------------


# One of each API write: method, path, body, status, and the audit entry it must leave
# (action, resource_type, resource_id; None: the share_id or cache_key of the response).
WRITES = [
    ("POST", "/threads", {"thread_id": "t1", "user_id": "u1"}, 201,
     "thread_created", "thread", "t1"),
    ("POST", "/threads/t1/messages", {"message_id": "m1", "role": "user", "content": "hi"}, 201,
     "message_created", "message", "m1"),
    ("POST", "/threads/t1/name", {"name": "Named"}, 200, "thread_renamed", "thread", "t1"),
    ("POST", "/threads/t1/share", {}, 201, "thread_shared", "share", None),
    ("DELETE", "/share/{share_id}", None, 204, "share_revoked", "share", None),
    ("POST", "/messages/m1/feedback", {"rating": 4}, 200, "feedback_set", "message", "m1"),
    ("POST", "/analyses", {"analysis_id": "a1", "title": "A", "is_template": True}, 201,
     "analysis_created", "analysis", "a1"),
    ("POST", "/analyses/a1/reuse", {}, 200, "analysis_reused", "analysis", "a1"),
    ("POST", "/saved-analyses", {"saved_id": "s1", "user_id": "u1", "analysis_id": "a1",
                                 "name": "S"}, 201, "analysis_saved", "saved_analysis", "s1"),
    ("DELETE", "/saved-analyses/s1", None, 204,
     "saved_analysis_deleted", "saved_analysis", "s1"),
    ("POST", "/executions", {"execution_id": "e1"}, 201, "execution_created", "execution", "e1"),
    ("PATCH", "/executions/e1", {"status": "running"}, 200,
     "execution_status_changed", "execution", "e1"),
    ("PUT", "/cache", {"question": "q", "result": 1}, 200, "cache_stored", "cache", None),
    ("PUT", "/users/u1", {"username": "ann"}, 201, "user_created", "user", "u1"),
    ("PUT", "/users/u1", {"username": "ann2"}, 200, "user_updated", "user", "u1"),
    ("DELETE", "/threads/t1", None, 204, "thread_deleted", "thread", "t1"),
    ("POST", "/ingest", {"events": [{"type": "thread", "id": "t2", "data": {"user_id": "u1"}}]},
     200, "thread_created", "thread", "t2"),
]  # fmt: skip


async def write_everything(client, w) -> list[tuple[str, str, str]]:
    """Make every write of WRITES; returns the audit entries expected."""
    expected, share_id = [], None
    for method, path, body, status, action, rtype, rid in WRITES:
        r = await client.request(method, API + path.format(share_id=share_id), json=body,
                                 headers=w)  # fmt: skip
        assert r.status_code == status, f"{method} {path}: {r.text}"
        out = r.json() if r.content else {}
        share_id = out.get("share_id", share_id)
        expected.append((action, rtype, rid or out.get("cache_key") or share_id))
    return expected


async def test_every_api_write_is_audited_naming_the_key(client, make_key, other):
    writer = await make_key("org-a", "ingest", "read", "share")
    admin = await make_key("org-a", "admin")
    expected = await write_everything(client, writer)
    # Reads and rejected writes leave no entry.
    assert (await client.get(f"{API}/threads", headers=writer)).status_code == 200
    r = await client.post(
        f"{API}/threads", json={"thread_id": "t2", "user_id": "u1"}, headers=writer
    )
    assert r.status_code == 409
    assert (await client.post(f"{API}/analyses", json={}, headers=writer)).status_code == 422

    r = await client.get(f"{API}/audit", params={"limit": 200}, headers=admin)
    assert r.status_code == 200, r.text
    page = r.json()
    assert set(page) == {"items", "next_cursor"} and page["next_cursor"] is None
    items = page["items"]
    assert sorted((e["action"], e["resource_type"], e["resource_id"]) for e in items) == sorted(
        expected
    )
    for entry in items:
        assert set(entry) == AUDIT_KEYS
        assert entry["actor_type"] == "api_key" and entry["actor_id"] == key_id(writer)
        assert entry["success"] is True and entry["ip_address"] == "127.0.0.1"
        assert ISO_MS.match(entry["created_at"])
    stamps = [e["created_at"] for e in items]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    renamed = next(e for e in items if e["action"] == "thread_renamed")
    assert renamed["before"] == {"title": "Untitled conversation"}
    assert renamed["after"] == {"title": "Named"}
    assert renamed["changes"] == {"title": ["Untitled conversation", "Named"]}
    assert await AuditLog.find({"org_id": "org-a"}).count() == len(expected)

    # Another org's admin sees none of it.
    r = await client.get(f"{API}/audit", headers=other)
    assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}


async def test_audit_filters_and_pages(client, make_key):
    writer = await make_key("org-a", "ingest", "read", "share")
    admin = await make_key("org-a", "admin")
    expected = await write_everything(client, writer)
    await asyncio.sleep(0.01)
    since = datetime.now(UTC)
    await asyncio.sleep(0.01)
    r = await client.put(f"{API}/users/u7", json={"username": "late"}, headers=writer)
    assert r.status_code == 201

    async def entries(**params):
        r = await client.get(f"{API}/audit", params=params, headers=admin)
        assert r.status_code == 200, r.text
        return [(e["action"], e["resource_type"], e["resource_id"]) for e in r.json()["items"]]

    threads = sorted(e for e in expected if e[1] == "thread")
    assert sorted(await entries(resource_type="thread")) == threads
    assert sorted(await entries(resource_id="t1")) == sorted(e for e in expected if e[2] == "t1")
    assert await entries(resource_type="thread", resource_id="t1", action="thread_renamed") == [
        ("thread_renamed", "thread", "t1")
    ]
    assert len(await entries(action="thread_created")) == 2
    assert await entries(since=since.isoformat()) == [("user_created", "user", "u7")]
    assert await entries(since="2999-01-01T00:00:00+00:00") == []
    assert len(await entries(since="2000-01-01T00:00:00Z")) == len(expected) + 1
    assert len(await entries(actor_id=key_id(writer))) == len(expected) + 1
    assert await entries(actor_id=key_id(admin)) == []
    assert await entries(resource_type='{"$ne": ""}') == []

    seen, cursor = [], None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        r = await client.get(f"{API}/audit", params=params, headers=admin)
        assert r.status_code == 200 and len(r.json()["items"]) <= 4
        seen += [e["audit_id"] for e in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == len(expected) + 1


async def test_audit_needs_admin_and_valid_queries(client, make_key):
    writer = await make_key("org-a", "ingest", "read", "share")
    admin = await make_key("org-a", "admin")
    r = await client.post(
        f"{API}/threads", json={"thread_id": "t1", "user_id": "u1"}, headers=writer
    )
    assert r.status_code == 201
    await auth_errors(client, "GET", "/audit", None, writer)
    for query, field in [
        ("since=garbage", "since"),
        ("since=2024-13-01", "since"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=abc", "limit"),
        ("user_id=u1", "user_id"),
        ("action=a&action=b", "action"),
    ]:
        r = await client.get(f"{API}/audit?{query}", headers=admin)
        assert field in fields(error(r, 422, "invalid")), query
    error(await client.get(f"{API}/audit?cursor=garbage!", headers=admin), 422, "invalid")
    error(await client.post(f"{API}/audit", json={}, headers=admin), 405, "method_not_allowed")
    error(await client.delete(f"{API}/audit", headers=admin), 405, "method_not_allowed")
    assert await AuditLog.find({"org_id": "org-a"}).count() == 1


# -- OpenAPI and docs ----------------------------------------------------------------------------


async def test_openapi_document_lists_every_endpoint(client):
    r = await client.get(f"{API}/openapi.json")  # public, no key
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    schemas = doc["components"]["schemas"]
    assert "Error" in schemas
    for ep in ENDPOINTS:
        op = doc["paths"][ep.path][ep.method.lower()]
        assert str(ep.status) in op["responses"], (ep.method, ep.path)
        for name in re.findall(r"{(\w+)}", ep.path):
            assert any(p["in"] == "path" and p["name"] == name for p in op["parameters"])
        if ep.body is not None:
            assert "application/json" in op["requestBody"]["content"]
        if ep.query is not None:
            declared = {p["name"] for p in op["parameters"] if p["in"] == "query"}
            assert declared == set(ep.query.model_fields), ep.path
        assert ("security" in op) == (ep.scope is not None), ep.path
    operations = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert operations >= {(ep.path, ep.method.lower()) for ep in ENDPOINTS}

    # Every $ref resolves.
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                assert ref.startswith("#/components/schemas/") and ref.split("/")[-1] in schemas
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)

    # The request schemas are the validating models: required fields, no extra keys.
    create = doc["paths"]["/threads"]["post"]["requestBody"]["content"]["application/json"]
    thread_in = schemas[create["schema"]["$ref"].split("/")[-1]]
    assert thread_in["required"] == ["user_id"]
    assert thread_in["additionalProperties"] is False


async def test_docs_page_uses_only_local_assets(client):
    r = await client.get(f"{API}/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert not re.search(r"https?://", page, re.IGNORECASE)
    assert "//" not in re.sub(r"<!doctype[^>]*>", "", page, flags=re.IGNORECASE)
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page, re.IGNORECASE)
    assert any(ref.endswith(".js") for ref in refs) and any(ref.endswith(".css") for ref in refs)
    for ref in refs:
        url = urljoin(str(r.url), ref)
        assert urlsplit(url).netloc == "testserver", ref
        asset = await client.get(url)
        assert asset.status_code == 200, ref
        assert asset.content
        kind = "css" if ref.endswith(".css") else "javascript"
        assert kind in asset.headers["content-type"], (ref, asset.headers["content-type"])
        if ref.endswith("init.js"):
            assert not re.search(r"https?://", asset.text)
            spec = re.search(r"""url:\s*["']([^"']+)["']""", asset.text).group(1)
            resolved = await client.get(urljoin(str(r.url), spec))
            assert resolved.status_code == 200 and resolved.json()["openapi"] == "3.1.0"


async def test_unknown_api_path_is_a_json_404(client, h):
    for path in ["/nope", "/threads/t1/nope", "/v2/threads"]:
        error(await client.get(API + path, headers=h), 404, "not_found")
