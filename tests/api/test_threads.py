"""/api/v1/threads: list, create, read with message pages, append (also concurrently), rename,
soft delete and context; auth, scopes, org isolation and body/query validation."""

import asyncio
import re

import pytest

from chatadmin.models import AuditLog, Message, Thread
from tests.api.helpers import db_state, error, fields

pytestmark = pytest.mark.usefixtures("database")

API = "/api/v1"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
THREAD_KEYS = {
    "thread_id", "org_id", "user_id", "title", "description", "type", "status", "is_pinned",
    "is_favorited", "tags", "initial_source", "message_count", "last_message_at", "created_at",
    "updated_at", "metadata",
}  # fmt: skip
MESSAGE_KEYS = {
    "message_id", "thread_id", "user_id", "seq", "role", "content", "text", "question_context",
    "analysis_id", "analysis", "ai_metadata", "execution_id", "execution_status", "status",
    "feedback", "created_at", "updated_at", "metadata",
}  # fmt: skip
JSON = {"content-type": "application/json"}
# Free-form objects must round-trip exactly, operator-looking and dotted keys included.
HOSTILE_META = {"$gt": 1, "a.b": {"$where": ["x", {"c.d": None}]}, "ü": "\u2603", "n": [1.5, True]}


def nested(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


async def new_thread(client, h, thread_id="t1", user_id="u1", **extra) -> dict:
    r = await client.post(
        f"{API}/threads", json={"thread_id": thread_id, "user_id": user_id, **extra}, headers=h
    )
    assert r.status_code == 201, r.text
    return r.json()


async def append(client, h, thread_id="t1", **body) -> dict:
    body.setdefault("role", "user")
    r = await client.post(f"{API}/threads/{thread_id}/messages", json=body, headers=h)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
async def full(make_key):
    return await make_key("org-a", "ingest", "read")


# -- create -----------------------------------------------------------------------------------


async def test_create_thread_201_with_exact_shape(client, full):
    body = {
        "thread_id": "t1",
        "user_id": "u1",
        "title": "Quarterly volatility",
        "description": "desc",
        "type": "analysis",
        "status": "archived",
        "is_pinned": True,
        "is_favorited": True,
        "tags": ["finance", "q3"],
        "initial_source": "web",
        "metadata": {**HOSTILE_META, "deep": nested(29)},  # 30 levels deep
        "created_at": "2024-05-01T12:00:00.123456+02:00",
    }
    r = await client.post(f"{API}/threads", json=body, headers=full)
    assert r.status_code == 201, r.text
    out = r.json()
    assert set(out) == THREAD_KEYS
    assert out["org_id"] == "org-a"
    for name in (
        "thread_id",
        "user_id",
        "title",
        "description",
        "type",
        "status",
        "is_pinned",
        "is_favorited",
        "tags",
        "initial_source",
        "metadata",
    ):
        assert out[name] == body[name], name
    assert out["message_count"] == 0 and out["last_message_at"] is None
    assert out["created_at"] == "2024-05-01T10:00:00.123+00:00"  # UTC, milliseconds
    assert ISO_MS.match(out["updated_at"])
    stored = await Thread.find_one({"org_id": "org-a", "thread_id": "t1"})
    assert stored.title == "Quarterly volatility" and stored.metadata == body["metadata"]
    r = await client.get(f"{API}/threads/t1", headers=full)
    assert r.json()["thread"] == out


async def test_create_thread_defaults_and_generated_id(client, full):
    r = await client.post(f"{API}/threads", json={"user_id": "u1"}, headers=full)
    assert r.status_code == 201, r.text
    out = r.json()
    assert re.fullmatch(r"[0-9a-f]{32}", out["thread_id"])
    assert out["title"] == "Untitled conversation" and out["status"] == "active"
    assert out["tags"] == [] and out["metadata"] == {} and out["is_pinned"] is False
    assert ISO_MS.match(out["created_at"]) and ISO_MS.match(out["updated_at"])
    assert await Thread.find({"org_id": "org-a"}).count() == 1


async def test_create_existing_thread_id_is_409_and_changes_nothing(client, full, make_key):
    await new_thread(client, full, title="Original")
    before = await db_state()
    r = await client.post(
        f"{API}/threads", json={"thread_id": "t1", "user_id": "u2", "title": "Other"}, headers=full
    )
    error(r, 409, "conflict")
    assert await db_state() == before
    assert (await Thread.find_one({"thread_id": "t1"})).title == "Original"
    # Ids are per org: org-b may use the same thread_id without touching org-a's.
    other = await make_key("org-b", "ingest", "read")
    created = await new_thread(client, other, title="B's")
    assert created["org_id"] == "org-b"
    assert (await Thread.find_one({"org_id": "org-a", "thread_id": "t1"})).title == "Original"
    r = await client.get(f"{API}/threads/t1", headers=full)
    assert r.json()["thread"]["title"] == "Original"


CREATE_INVALID = [
    ({}, "user_id"),
    ({"user_id": 5}, "user_id"),
    ({"user_id": "$ne"}, "user_id"),
    ({"user_id": {"$ne": None}}, "user_id"),
    ({"user_id": "u" * 129}, "user_id"),
    ({"user_id": "u1", "thread_id": "a b"}, "thread_id"),
    ({"user_id": "u1", "title": ""}, "title"),
    ({"user_id": "u1", "title": "x" * 501}, "title"),
    ({"user_id": "u1", "title": 5}, "title"),
    ({"user_id": "u1", "status": "deleted"}, "status"),
    ({"user_id": "u1", "is_pinned": "true"}, "is_pinned"),
    ({"user_id": "u1", "tags": [""]}, "tags.0"),
    ({"user_id": "u1", "tags": ["t"] * 51}, "tags"),
    ({"user_id": "u1", "tags": "finance"}, "tags"),
    ({"user_id": "u1", "metadata": []}, "metadata"),
    ({"user_id": "u1", "metadata": nested(33)}, "metadata"),
    ({"user_id": "u1", "metadata": {"\ue001x": 1}}, "metadata"),
    ({"user_id": "u1", "created_at": "yesterday"}, "created_at"),
    ({"user_id": "u1", "org_id": "org-b"}, "org_id"),
    ({"user_id": "u1", "message_count": 9}, "message_count"),
]


async def test_create_thread_invalid_body_is_422_naming_the_field(client, full):
    before = await db_state()
    for body, field in CREATE_INVALID:
        r = await client.post(f"{API}/threads", json=body, headers=full)
        err = error(r, 422, "invalid")
        assert field in fields(err), (body, err)
    r = await client.post(
        f"{API}/threads", json={"user_id": "u1", "metadata": nested(200)}, headers=full
    )
    error(r, 422, "invalid")
    assert await db_state() == before


# -- bodies that are not JSON objects, on every JSON endpoint of threads ----------------------

BODY_ENDPOINTS = [
    ("POST", "/threads"),
    ("POST", "/threads/t1/messages"),
    ("POST", "/threads/t1/name"),
]
OK_BODY = b'{"user_id": "u1", "role": "user", "name": "x"}'
NOT_JSON = (415, "unsupported_media_type")
BAD_BODIES = [
    ("text_plain", OK_BODY, {"content-type": "text/plain"}, *NOT_JSON),
    ("form", b"user_id=u1", {"content-type": "application/x-www-form-urlencoded"}, *NOT_JSON),
    ("no_type", OK_BODY, {}, *NOT_JSON),
    ("malformed", b'{"user_id": "u1",', JSON, 400, "bad_request"),
    ("trailing", b'{"user_id": "u1"} x', JSON, 400, "bad_request"),
    ("nan", b'{"user_id": "u1", "role": "user", "name": NaN}', JSON, 400, "bad_request"),
    ("empty", b"", JSON, 400, "bad_request"),
    ("spaces", b"   ", JSON, 400, "bad_request"),
    ("not_utf8", b'{"user_id": "\xff\xfe"}', JSON, 400, "bad_request"),
    ("array", b"[]", JSON, 422, "invalid"),
    ("string", b'"hello"', JSON, 422, "invalid"),
    ("null", b"null", JSON, 422, "invalid"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
async def test_bodies_that_are_not_json_objects(client, full, method, path):
    await new_thread(client, full)
    before = await db_state()
    for name, content, headers, status, code in BAD_BODIES:
        r = await client.request(method, API + path, content=content, headers={**full, **headers})
        assert error(r, status, code), name
    assert await db_state() == before


# -- auth, scopes, methods ---------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/threads", None, "read"),
    ("POST", "/threads", {"thread_id": "t9", "user_id": "u1"}, "ingest"),
    ("GET", "/threads/t1", None, "read"),
    ("DELETE", "/threads/t1", None, "ingest"),
    ("POST", "/threads/t1/messages", {"role": "user", "content": "hi"}, "ingest"),
    ("POST", "/threads/t1/name", {"name": "New"}, "ingest"),
    ("GET", "/threads/t1/context", None, "read"),
]
BAD_AUTH = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer wrong"},
    {"Authorization": "Bearer ca_0123456789abcdef_not-the-secret"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
async def test_missing_or_wrong_key_is_401(client, full, method, path, body, scope):
    await new_thread(client, full)
    real = full["Authorization"]
    before = await db_state()
    for headers in [*BAD_AUTH, {"Authorization": real[:-2] + "xx"}]:
        r = await client.request(method, API + path, json=body, headers=headers)
        error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
    assert await db_state() == before


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
async def test_key_without_the_scope_is_403(client, full, make_key, method, path, body, scope):
    await new_thread(client, full)
    others = [s for s in ("ingest", "read", "share") if s != scope]
    lacking = await make_key("org-a", *others)
    before = await db_state()
    r = await client.request(method, API + path, json=body, headers=lacking)
    error(r, 403, "forbidden")
    assert await db_state() == before
    # `admin` implies every scope.
    admin = await make_key("org-a", "admin")
    r = await client.request(method, API + path, json=body, headers=admin)
    assert r.status_code in (200, 201, 204), r.text


async def test_wrong_method_is_405(client, full):
    await new_thread(client, full)
    before = await db_state()
    for method, path in [
        ("PUT", "/threads"),
        ("DELETE", "/threads"),
        ("PATCH", "/threads/t1"),
        ("PUT", "/threads/t1"),
        ("GET", "/threads/t1/messages"),
        ("PUT", "/threads/t1/name"),
        ("GET", "/threads/t1/name"),
        ("POST", "/threads/t1/context"),
    ]:
        r = await client.request(method, API + path, json={"name": "x"}, headers=full)
        error(r, 405, "method_not_allowed")
        assert method not in r.headers["allow"]
    assert await db_state() == before


# -- org isolation and unknown ids --------------------------------------------------------------

ID_ENDPOINTS = [
    ("GET", "/threads/{id}", None),
    ("GET", "/threads/{id}/context", None),
    ("DELETE", "/threads/{id}", None),
    ("POST", "/threads/{id}/messages", {"role": "user", "content": "intruder"}),
    ("POST", "/threads/{id}/name", {"name": "Hijacked"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ID_ENDPOINTS)
async def test_another_orgs_thread_is_404_and_untouched(client, full, make_key, method, path, body):
    await new_thread(client, full, title="Mine")
    await append(client, full, content="hello")
    other = await make_key("org-b", "ingest", "read", "share", "admin")
    before = await db_state()
    r = await client.request(method, API + path.format(id="t1"), json=body, headers=other)
    err = error(r, 404, "not_found")
    assert "org-a" not in err["message"]
    assert await db_state() == before
    thread = await Thread.find_one({"org_id": "org-a", "thread_id": "t1"})
    assert thread.title == "Mine" and thread.status == "active" and thread.message_count == 1


async def test_unknown_or_impossible_thread_id_is_404(client, full):
    await new_thread(client, full)
    before = await db_state()
    for method, path, body in ID_ENDPOINTS:
        for bad_id in ["nope", "T1", "%24ne", "a%20b", "x" * 200, "%C3%A9t%C3%A9", "t1%00"]:
            r = await client.request(method, API + path.format(id=bad_id), json=body, headers=full)
            error(r, 404, "not_found")
    assert await db_state() == before


# -- list -----------------------------------------------------------------------------------


async def test_list_threads_newest_activity_first_filters_and_pages(client, full, make_key):
    await new_thread(client, full, "old", "u1", created_at="2024-01-01T00:00:00.000Z")
    await new_thread(client, full, "mid", "u2", created_at="2024-02-01T00:00:00.000Z")
    await new_thread(client, full, "new", "u1", created_at="2024-03-01T00:00:00.000Z")
    await new_thread(client, full, "gone", "u1", created_at="2024-04-01T00:00:00.000Z")
    assert (await client.delete(f"{API}/threads/gone", headers=full)).status_code == 204
    await append(client, full, "old", content="bump", created_at="2024-06-01T00:00:00.000Z")

    r = await client.get(f"{API}/threads", headers=full)
    assert r.status_code == 200, r.text
    page = r.json()
    assert set(page) == {"items", "next_cursor"} and page["next_cursor"] is None
    assert [t["thread_id"] for t in page["items"]] == ["old", "new", "mid"]
    for item in page["items"]:
        assert set(item) == THREAD_KEYS
        assert ISO_MS.match(item["created_at"]) and ISO_MS.match(item["updated_at"])
    assert page["items"][0]["last_message_at"] == "2024-06-01T00:00:00.000+00:00"
    assert page["items"][0]["message_count"] == 1

    r = await client.get(f"{API}/threads", params={"user_id": "u1"}, headers=full)
    assert [t["thread_id"] for t in r.json()["items"]] == ["old", "new"]
    r = await client.get(f"{API}/threads", params={"status": "deleted"}, headers=full)
    assert [t["thread_id"] for t in r.json()["items"]] == ["gone"]
    assert r.json()["items"][0]["status"] == "deleted"
    r = await client.get(f"{API}/threads", params={"status": "archived"}, headers=full)
    assert r.json() == {"items": [], "next_cursor": None}

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await client.get(f"{API}/threads", params=params, headers=full)
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) <= 2
        seen += [t["thread_id"] for t in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
    assert seen == ["old", "new", "mid"]

    other = await make_key("org-b", "read")
    r = await client.get(f"{API}/threads", headers=other)
    assert r.json() == {"items": [], "next_cursor": None}


async def test_list_threads_bad_query_is_422(client, full):
    for query, field in [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=1&limit=2", "limit"),
        ("status=bogus", "status"),
        ("user_id=%24ne", "user_id"),
        ("user_id=a%20b", "user_id"),
        ("foo=1", "foo"),
        ("cursor=" + "x" * 1025, "cursor"),
    ]:
        r = await client.get(f"{API}/threads?{query}", headers=full)
        err = error(r, 422, "invalid")
        assert field in fields(err), (query, err)
    await new_thread(client, full)
    # Forged cursors: not base64 JSON, `{}`, `{"a": "1", "t": "x"}` (wrong type), a NUL.
    for cursor in ["garbage!", "e30", "eyJhIjoiMSIsInQiOiJ4In0", "%00"]:
        error(await client.get(f"{API}/threads?cursor={cursor}", headers=full), 422, "invalid")


# -- read with messages ------------------------------------------------------------------------


async def test_get_thread_pages_messages_in_seq_order(client, full):
    await new_thread(client, full)
    for i in range(5):
        await append(client, full, content=f"m{i}", role="user" if i % 2 == 0 else "assistant")

    r = await client.get(f"{API}/threads/t1", headers=full)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"thread", "messages", "next_cursor"}
    assert set(body["thread"]) == THREAD_KEYS and body["thread"]["message_count"] == 5
    assert [m["seq"] for m in body["messages"]] == [0, 1, 2, 3, 4]
    assert [m["text"] for m in body["messages"]] == [f"m{i}" for i in range(5)]
    assert body["next_cursor"] is None
    for m in body["messages"]:
        assert set(m) == MESSAGE_KEYS
        assert ISO_MS.match(m["created_at"]) and ISO_MS.match(m["updated_at"])

    seqs, cursor = [], None
    for _ in range(3):
        params = {"messages_limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await client.get(f"{API}/threads/t1", params=params, headers=full)
        assert r.status_code == 200, r.text
        seqs.append([m["seq"] for m in r.json()["messages"]])
        cursor = r.json()["next_cursor"]
    assert seqs == [[0, 1], [2, 3], [4]] and cursor is None

    r = await client.get(f"{API}/threads/t1", params={"messages_limit": 0}, headers=full)
    assert r.json()["messages"] == [] and r.json()["next_cursor"] is None
    assert r.json()["thread"]["thread_id"] == "t1"


async def test_get_thread_bad_query_is_422(client, full):
    await new_thread(client, full)
    for query, field in [
        ("messages_limit=-1", "messages_limit"),
        ("messages_limit=501", "messages_limit"),
        ("messages_limit=abc", "messages_limit"),
        ("limit=5", "limit"),
        ("cursor=" + "x" * 1025, "cursor"),
    ]:
        err = error(await client.get(f"{API}/threads/t1?{query}", headers=full), 422, "invalid")
        assert field in fields(err), (query, err)
    r = await client.get(f"{API}/threads/t1?cursor=bm90LWpzb24", headers=full)  # "not-json"
    error(r, 422, "invalid")


# -- append ------------------------------------------------------------------------------------


async def test_append_message_201_with_seq_and_exact_round_trip(client, full):
    await new_thread(client, full, user_id="owner")
    first = await append(
        client,
        full,
        content="What is the volatility of AAPL?",
        question_context={"original_question": "vol AAPL?", "query_type": "complete"},
    )
    assert set(first) == MESSAGE_KEYS
    assert first["seq"] == 0 and first["thread_id"] == "t1"
    assert first["user_id"] == "owner"  # inherited from the thread
    assert first["content"] == [{"type": "text", "text": "What is the volatility of AAPL?"}]
    assert first["text"] == "What is the volatility of AAPL?"
    assert first["question_context"]["query_type"] == "complete"
    assert first["feedback"] is None and first["status"] == "sent"
    assert ISO_MS.match(first["created_at"]) and ISO_MS.match(first["updated_at"])

    blocks = [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "tu1", "name": "prices", "input": HOSTILE_META},
        {"type": "tool_result", "tool_use_id": "tu1", "content": "42", "is_error": False},
        {"type": "structured_data", "name": "table", "columns": ["a"], "data": {"$x.y": [1]}},
    ]
    second = await append(
        client,
        full,
        role="assistant",
        message_id="m-2",
        content=blocks,
        ai_metadata={
            "model": "m1",
            "input_tokens": 3,
            "output_tokens": 4,
            "total_tokens": 7,
            "response_ms": 120,
        },
        metadata=HOSTILE_META,
        created_at="2030-01-02T03:04:05.678+00:00",
    )
    assert second["seq"] == 1 and second["message_id"] == "m-2"
    assert second["metadata"] == HOSTILE_META
    assert second["content"][1]["input"] == HOSTILE_META
    assert second["content"][3]["data"] == {"$x.y": [1]}
    assert second["ai_metadata"]["total_tokens"] == 7
    assert second["created_at"] == "2030-01-02T03:04:05.678+00:00"

    r = await client.get(f"{API}/threads/t1", headers=full)
    stored = r.json()["messages"]
    assert stored[1] == second  # what the append returned is what is read back
    thread = r.json()["thread"]
    assert thread["message_count"] == 2
    assert thread["last_message_at"] == "2030-01-02T03:04:05.678+00:00"
    doc = await Message.find_one({"org_id": "org-a", "message_id": "m-2"})
    assert doc.seq == 1 and doc.metadata == HOSTILE_META


async def test_concurrent_appends_get_distinct_consecutive_seqs(client, full):
    await new_thread(client, full)
    n = 30
    responses = await asyncio.gather(
        *(
            client.post(
                f"{API}/threads/t1/messages",
                json={"role": "user", "content": f"msg {i}"},
                headers=full,
            )
            for i in range(n)
        )
    )
    assert [r.status_code for r in responses] == [201] * n
    seqs = sorted(r.json()["seq"] for r in responses)
    assert seqs == list(range(n))
    stored = await Message.find({"org_id": "org-a", "thread_id": "t1"}).to_list()
    assert sorted(m.seq for m in stored) == list(range(n))
    thread = await Thread.find_one({"org_id": "org-a", "thread_id": "t1"})
    assert thread.message_count == n and thread.next_seq == n
    r = await client.get(f"{API}/threads/t1", params={"messages_limit": 200}, headers=full)
    assert [m["seq"] for m in r.json()["messages"]] == list(range(n))


async def test_append_existing_message_id_is_409_and_changes_nothing(client, full):
    await new_thread(client, full)
    await append(client, full, message_id="m1", content="first")
    before = await db_state()
    r = await client.post(
        f"{API}/threads/t1/messages",
        json={"role": "user", "message_id": "m1", "content": "again"},
        headers=full,
    )
    error(r, 409, "conflict")
    assert await db_state() == before


APPEND_INVALID = [
    ({}, "role"),
    ({"role": "robot"}, "role"),
    ({"role": ["user"]}, "role"),
    ({"role": "user", "content": 5}, "content"),
    ({"role": "user", "content": [{"type": "nope"}]}, "content"),
    ({"role": "user", "content": [{"type": "text"}]}, "content"),
    ({"role": "user", "content": [{"type": "text", "text": "x", "extra": 1}]}, "content"),
    ({"role": "user", "status": "lost"}, "status"),
    ({"role": "user", "message_id": "$oid"}, "message_id"),
    ({"role": "user", "user_id": {"$gt": ""}}, "user_id"),
    ({"role": "user", "ai_metadata": {"total_tokens": -1}}, "ai_metadata.total_tokens"),
    ({"role": "user", "ai_metadata": {"confidence": 2}}, "ai_metadata.confidence"),
    ({"role": "user", "question_context": {}}, "question_context.original_question"),
    ({"role": "user", "references": [{"kind": "k"}]}, "references.0.ref_id"),
    ({"role": "user", "metadata": "x"}, "metadata"),
    ({"role": "user", "created_at": 12}, "created_at"),
    ({"role": "user", "seq": 7}, "seq"),
    ({"role": "user", "thread_id": "t2"}, "thread_id"),
]


async def test_append_invalid_body_is_422_naming_the_field(client, full):
    await new_thread(client, full)
    before = await db_state()
    for body, field in APPEND_INVALID:
        r = await client.post(f"{API}/threads/t1/messages", json=body, headers=full)
        err = error(r, 422, "invalid")
        assert any(f == field or f.startswith(field + ".") for f in fields(err)), (body, err)
    assert await db_state() == before


# -- delete --------------------------------------------------------------------------------------


async def test_delete_is_soft_204_then_every_read_and_write_is_404(client, full):
    await new_thread(client, full)
    await append(client, full, content="keep me")
    r = await client.delete(f"{API}/threads/t1", headers=full)
    assert r.status_code == 204 and r.content == b""

    error(await client.get(f"{API}/threads/t1", headers=full), 404, "not_found")
    error(await client.get(f"{API}/threads/t1/context", headers=full), 404, "not_found")
    before = await db_state()
    r = await client.post(
        f"{API}/threads/t1/messages", json={"role": "user", "content": "x"}, headers=full
    )
    error(r, 404, "not_found")
    error(await client.post(f"{API}/threads/t1/name", json={"name": "x"}, headers=full), 404)
    error(await client.delete(f"{API}/threads/t1", headers=full), 404, "not_found")
    assert await db_state() == before

    r = await client.get(f"{API}/threads", headers=full)
    assert r.json()["items"] == []
    thread = await Thread.find_one({"org_id": "org-a", "thread_id": "t1"})
    assert thread.status == "deleted" and thread.deleted_at is not None
    assert await Message.find({"org_id": "org-a", "thread_id": "t1"}).count() == 1  # soft
    audit = await AuditLog.find_one({"org_id": "org-a", "action": "thread_deleted"})
    assert audit.resource_id == "t1" and audit.after == {"status": "deleted"}


# -- rename ------------------------------------------------------------------------------------


async def test_rename_sets_title(client, full):
    created = await new_thread(client, full, title="Old")
    r = await client.post(f"{API}/threads/t1/name", json={"name": "  New name  "}, headers=full)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == THREAD_KEYS
    assert out["title"] == "New name" and out["thread_id"] == "t1"
    assert out["created_at"] == created["created_at"]
    assert ISO_MS.match(out["updated_at"])
    r = await client.get(f"{API}/threads/t1", headers=full)
    assert r.json()["thread"]["title"] == "New name"
    audit = await AuditLog.find_one({"org_id": "org-a", "action": "thread_renamed"})
    assert audit.before == {"title": "Old"} and audit.after == {"title": "New name"}


async def test_rename_invalid_body_is_422_and_keeps_the_title(client, full):
    await new_thread(client, full, title="Old")
    before = await db_state()
    for body, field in [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 501}, "name"),
        ({"name": 7}, "name"),
        ({"name": None}, "name"),
        ({"title": "x"}, "title"),
        ({"name": "ok", "extra": True}, "extra"),
    ]:
        err = error(await client.post(f"{API}/threads/t1/name", json=body, headers=full), 422)
        assert field in fields(err), (body, err)
    error(await client.post(f"{API}/threads/t1/name", json={"name": "   "}, headers=full), 422)
    assert await db_state() == before
    assert (await Thread.find_one({"thread_id": "t1"})).title == "Old"


# -- context -----------------------------------------------------------------------------------


async def test_context_gives_recent_messages_and_analyses(client, full):
    await new_thread(client, full)
    await new_thread(client, full, "t2")
    for i in range(6):
        await append(client, full, content=f"m{i}")
    for i, (thread, title) in enumerate([("t1", "A1"), ("t2", "Other"), ("t1", "A2")]):
        r = await client.post(
            f"{API}/analyses",
            json={"analysis_id": f"an{i}", "title": title, "thread_id": thread},
            headers=full,
        )
        assert r.status_code == 201, r.text
        await asyncio.sleep(0.005)  # distinct creation milliseconds

    r = await client.get(f"{API}/threads/t1/context", params={"messages": 3}, headers=full)
    assert r.status_code == 200, r.text
    ctx = r.json()
    assert set(ctx) == {"thread", "recent_messages", "recent_analyses"}
    assert set(ctx["thread"]) == THREAD_KEYS and ctx["thread"]["message_count"] == 6
    assert [m["seq"] for m in ctx["recent_messages"]] == [3, 4, 5]
    assert all(set(m) == MESSAGE_KEYS for m in ctx["recent_messages"])
    assert [a["title"] for a in ctx["recent_analyses"]] == ["A2", "A1"]
    for a in ctx["recent_analyses"]:
        assert set(a) == {"analysis_id", "title", "created_at"} and ISO_MS.match(a["created_at"])

    r = await client.get(f"{API}/threads/t1/context", headers=full)  # defaults: 10 and 5
    assert [m["seq"] for m in r.json()["recent_messages"]] == [0, 1, 2, 3, 4, 5]
    r = await client.get(f"{API}/threads/t1/context?messages=1&analyses=1", headers=full)
    assert [m["seq"] for m in r.json()["recent_messages"]] == [5]
    assert [a["analysis_id"] for a in r.json()["recent_analyses"]] == ["an2"]


async def test_context_bad_query_is_422(client, full):
    await new_thread(client, full)
    for query, field in [
        ("messages=abc", "messages"),
        ("messages=-1", "messages"),
        ("messages=201", "messages"),
        ("analyses=51", "analyses"),
        ("messages_limit=3", "messages_limit"),
        ("messages=1&messages=2", "messages"),
    ]:
        r = await client.get(f"{API}/threads/t1/context?{query}", headers=full)
        assert field in fields(error(r, 422, "invalid")), query
