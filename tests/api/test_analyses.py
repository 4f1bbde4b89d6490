"""/api/v1 analyses (create, get, search, reuse), saved analyses (create, list, get, delete) and
executions (create, get, status changes with 409 on impossible transitions)."""

import asyncio
import re

import pytest

from chatadmin.models import (
    Analysis,
    AuditLog,
    Execution,
    Message,
    SavedAnalysis,
)
from tests.api.helpers import db_state, error, fields

pytestmark = pytest.mark.usefixtures("database")

API = "/api/v1"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
JSON = {"content-type": "application/json"}
HOSTILE = {"$gt": 1, "a.b": {"$where": ["x", {"c.d": None}]}, "ü": "\u2603"}
ANALYSIS_KEYS = {
    "analysis_id", "user_id", "thread_id", "message_id", "execution_id", "question", "title",
    "description", "category", "result", "parameters", "mcp_calls", "generated_script",
    "execution_ms", "data_sources", "version", "is_template", "similar_queries", "tags",
    "usage_count", "last_used_at", "created_at", "updated_at", "metadata",
}  # fmt: skip
SAVED_KEYS = {
    "saved_id", "user_id", "analysis_id", "name", "description", "usage_count", "last_used_at",
    "is_template", "template_variables", "tags", "category", "created_at", "updated_at",
}  # fmt: skip
EXECUTION_KEYS = {
    "execution_id", "user_id", "thread_id", "message_id", "analysis_id", "question",
    "generated_script", "parameters", "status", "started_at", "completed_at", "execution_ms",
    "result", "error", "warnings", "mcp_calls", "mcp_errors", "memory_used_mb", "cpu_percent",
    "cache_hit", "cache_key", "created_at", "updated_at", "metadata",
}  # fmt: skip


@pytest.fixture
async def h(make_key):
    return await make_key("org-a", "ingest", "read")


@pytest.fixture
async def other(make_key):
    return await make_key("org-b", "ingest", "read", "share", "admin")


async def create(client, h, **body) -> dict:
    body.setdefault("title", "An analysis")
    r = await client.post(f"{API}/analyses", json=body, headers=h)
    assert r.status_code == 201, r.text
    return r.json()


async def start_run(client, h, **body) -> dict:
    r = await client.post(f"{API}/executions", json=body, headers=h)
    assert r.status_code == 201, r.text
    return r.json()


async def patch(client, h, execution_id, **body):
    return await client.patch(f"{API}/executions/{execution_id}", json=body, headers=h)


FULL_ANALYSIS = {
    "analysis_id": "a1",
    "user_id": "u1",
    "thread_id": "t1",
    "message_id": "m1",
    "execution_id": "e1",
    "question": "What is the volatility of AAPL?",
    "title": "Volatility of AAPL",
    "description": "30-day rolling volatility",
    "category": "finance",
    "result": {
        "description": "AAPL is calm",
        "body": [{"key": "vol", "value": 0.21, "description": "annualised"},
                 {"key": "raw", "value": HOSTILE, "description": None}],
    },
    "parameters": HOSTILE,
    "mcp_calls": ["prices.get"],
    "generated_script": "print(1)",
    "execution_ms": 12,
    "data_sources": ["prices"],
    "version": 2,
    "is_template": True,
    "similar_queries": ["AAPL vol?"],
    "tags": ["finance", "risk"],
    "metadata": HOSTILE,
}  # fmt: skip


# -- analyses: create and get --------------------------------------------------------------------


async def test_create_analysis_201_and_get_it_back(client, h):
    out = await create(client, h, **FULL_ANALYSIS)
    assert set(out) == ANALYSIS_KEYS
    for name, value in FULL_ANALYSIS.items():
        assert out[name] == value, name
    assert out["usage_count"] == 0 and out["last_used_at"] is None
    assert ISO_MS.match(out["created_at"]) and ISO_MS.match(out["updated_at"])
    r = await client.get(f"{API}/analyses/a1", headers=h)
    assert r.status_code == 200 and r.json() == out
    stored = await Analysis.find_one({"org_id": "org-a", "analysis_id": "a1"})
    assert stored.parameters == HOSTILE and stored.result.body[1].value == HOSTILE
    audit = await AuditLog.find_one({"org_id": "org-a", "action": "analysis_created"})
    assert audit.resource_type == "analysis" and audit.resource_id == "a1"

    minimal = await create(client, h, title="Only a title")
    assert re.fullmatch(r"[0-9a-f]{32}", minimal["analysis_id"])
    assert minimal["result"] == {"description": None, "body": []}
    assert minimal["version"] == 1 and minimal["is_template"] is False


async def test_create_existing_analysis_id_is_409_and_changes_nothing(client, h, other):
    await create(client, h, analysis_id="a1", title="Original")
    before = await db_state()
    r = await client.post(
        f"{API}/analyses", json={"analysis_id": "a1", "title": "Other"}, headers=h
    )
    error(r, 409, "conflict")
    assert await db_state() == before
    # The same id in another org is another analysis.
    assert (await create(client, other, analysis_id="a1", title="B's"))["title"] == "B's"
    r = await client.get(f"{API}/analyses/a1", headers=h)
    assert r.json()["title"] == "Original"


ANALYSIS_INVALID = [
    ({}, "title"),
    ({"title": ""}, "title"),
    ({"title": 5}, "title"),
    ({"title": "x" * 501}, "title"),
    ({"title": "t", "analysis_id": "$oid"}, "analysis_id"),
    ({"title": "t", "user_id": {"$ne": None}}, "user_id"),
    ({"title": "t", "version": 0}, "version"),
    ({"title": "t", "version": "1"}, "version"),
    ({"title": "t", "is_template": "yes"}, "is_template"),
    ({"title": "t", "execution_ms": -1}, "execution_ms"),
    ({"title": "t", "result": {"body": [{"value": 1}]}}, "result.body.0.key"),
    ({"title": "t", "result": {"rows": []}}, "result.rows"),
    ({"title": "t", "result": []}, "result"),
    ({"title": "t", "parameters": []}, "parameters"),
    ({"title": "t", "parameters": {"\ue002": 1}}, "parameters"),
    ({"title": "t", "tags": [""]}, "tags.0"),
    ({"title": "t", "tags": ["x" * 65]}, "tags.0"),
    ({"title": "t", "similar_queries": ["q"] * 51}, "similar_queries"),
    ({"title": "t", "mcp_calls": "one"}, "mcp_calls"),
    ({"title": "t", "usage_count": 99}, "usage_count"),
]


async def test_create_analysis_invalid_body_is_422_naming_the_field(client, h):
    before = await db_state()
    for body, field in ANALYSIS_INVALID:
        err = error(await client.post(f"{API}/analyses", json=body, headers=h), 422, "invalid")
        assert field in fields(err), (body, err)
    assert await db_state() == before


# -- search ------------------------------------------------------------------------------------


async def test_search_by_text_tag_user_and_reusable(client, h, other):
    specs = [
        ("a1", "Volatility of AAPL", "daily prices", ["finance"], "u1", True),
        ("a2", "Headcount by team", "volatility of staffing", ["hr"], "u2", False),
        ("a3", "Revenue forecast", "next quarter", ["finance", "forecast"], "u2", False),
        ("a4", "Volatility of MSFT", None, ["finance"], "u1", False),
    ]
    for analysis_id, title, description, tags, user, template in specs:
        await create(
            client,
            h,
            analysis_id=analysis_id,
            title=title,
            description=description,
            tags=tags,
            user_id=user,
            is_template=template,
        )
        await asyncio.sleep(0.003)  # distinct creation milliseconds
    await create(client, other, analysis_id="b1", title="Volatility elsewhere", tags=["finance"])

    async def ids(**params):
        r = await client.get(f"{API}/analyses", params=params, headers=h)
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"items", "next_cursor"}
        for item in r.json()["items"]:
            assert set(item) == ANALYSIS_KEYS
        return [a["analysis_id"] for a in r.json()["items"]]

    assert await ids() == ["a4", "a3", "a2", "a1"]  # newest first
    assert sorted(await ids(q="volatility")) == ["a1", "a2", "a4"]  # title or description
    assert await ids(q="volatility AAPL") == ["a1"]  # every word must match
    assert await ids(q="forecast") == ["a3"]
    assert await ids(q="nothing-like-this") == []
    assert await ids(tag="forecast") == ["a3"]
    assert await ids(tag="finance") == ["a4", "a3", "a1"]
    assert await ids(user_id="u2") == ["a3", "a2"]
    assert await ids(reusable="true") == ["a1"]
    assert await ids(reusable="false") == ["a4", "a3", "a2"]
    assert await ids(q="volatility", tag="finance", reusable="false") == ["a4"]
    assert await ids(limit=2) == ["a4", "a3"]
    # Search syntax and operators are plain words, never operators.
    assert await ids(q='-AAPL "$where" {"$ne": 1}') == []
    assert await ids(tag="$ne") == []
    # org-b sees only its own.
    r = await client.get(f"{API}/analyses", params={"q": "volatility"}, headers=other)
    assert [a["analysis_id"] for a in r.json()["items"]] == ["b1"]


async def test_search_bad_query_is_422(client, h):
    for query, field in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=1001", "limit"),
        ("reusable=maybe", "reusable"),
        ("user_id=%24ne", "user_id"),
        ("tag=" + "x" * 65, "tag"),
        ("q=" + "x" * 501, "q"),
        ("q=a&q=b", "q"),
        ("title=x", "title"),
    ]:
        err = error(await client.get(f"{API}/analyses?{query}", headers=h), 422, "invalid")
        assert field in fields(err), (query, err)


# -- reuse -------------------------------------------------------------------------------------


async def test_reuse_records_usage_and_merges_parameters(client, h):
    await create(
        client,
        h,
        analysis_id="a1",
        title="Vol",
        is_template=True,
        parameters={"ticker": "AAPL", "window": 30},
    )
    r = await client.post(
        f"{API}/analyses/a1/reuse",
        json={"question": "Vol of MSFT?", "parameters": {"ticker": "MSFT"}},
        headers=h,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"analysis", "parameters"}
    assert body["parameters"] == {"ticker": "MSFT", "window": 30}
    assert set(body["analysis"]) == ANALYSIS_KEYS
    assert body["analysis"]["usage_count"] == 1
    assert ISO_MS.match(body["analysis"]["last_used_at"])
    assert "Vol of MSFT?" in body["analysis"]["similar_queries"]
    assert body["analysis"]["parameters"] == {"ticker": "AAPL", "window": 30}  # stored unchanged

    r = await client.post(f"{API}/analyses/a1/reuse", json={}, headers=h)
    assert r.status_code == 200 and r.json()["analysis"]["usage_count"] == 2
    assert r.json()["parameters"] == {"ticker": "AAPL", "window": 30}
    stored = await Analysis.find_one({"org_id": "org-a", "analysis_id": "a1"})
    assert stored.usage_count == 2 and stored.last_used_at is not None
    audits = await AuditLog.find({"org_id": "org-a", "action": "analysis_reused"}).to_list()
    assert len(audits) == 2 and {a.resource_id for a in audits} == {"a1"}


async def test_reuse_of_a_non_template_needs_a_known_question(client, h):
    await create(client, h, analysis_id="a1", title="One-off", similar_queries=["What is X?"])
    before = await db_state()
    for body in [{}, {"question": "Something else?"}]:
        r = await client.post(f"{API}/analyses/a1/reuse", json=body, headers=h)
        error(r, 409, "conflict")
    assert await db_state() == before
    r = await client.post(
        f"{API}/analyses/a1/reuse", json={"question": "  what IS   x? "}, headers=h
    )
    assert r.status_code == 200, r.text
    assert r.json()["analysis"]["usage_count"] == 1


async def test_reuse_errors_write_nothing(client, h, other):
    await create(client, h, analysis_id="a1", title="Vol", is_template=True)
    before = await db_state()
    for body, field in [
        ({"question": 5}, "question"),
        ({"parameters": []}, "parameters"),
        ({"parameters": {"k": "v"}, "extra": 1}, "extra"),
        ({"question": "x" * 10_001}, "question"),
    ]:
        r = await client.post(f"{API}/analyses/a1/reuse", json=body, headers=h)
        assert field in fields(error(r, 422, "invalid")), body
    error(await client.post(f"{API}/analyses/nope/reuse", json={}, headers=h), 404, "not_found")
    error(await client.post(f"{API}/analyses/a1/reuse", json={}, headers=other), 404, "not_found")
    assert await db_state() == before
    assert (await Analysis.find_one({"analysis_id": "a1"})).usage_count == 0


# -- saved analyses ----------------------------------------------------------------------------


async def test_saved_analyses_create_list_get_delete(client, h):
    await create(client, h, analysis_id="a1", title="Vol", category="finance", tags=["risk"])
    r = await client.post(
        f"{API}/saved-analyses",
        json={
            "saved_id": "s1",
            "user_id": "u1",
            "analysis_id": "a1",
            "name": "My vol",
            "template_variables": HOSTILE,
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    saved = r.json()
    assert set(saved) == SAVED_KEYS
    assert saved["saved_id"] == "s1" and saved["name"] == "My vol"
    assert saved["category"] == "finance" and saved["tags"] == ["risk"]  # from the analysis
    assert saved["template_variables"] == HOSTILE
    assert saved["usage_count"] == 0 and saved["last_used_at"] is None
    assert saved["is_template"] is True
    assert ISO_MS.match(saved["created_at"]) and ISO_MS.match(saved["updated_at"])
    await asyncio.sleep(0.003)
    r = await client.post(
        f"{API}/saved-analyses",
        json={
            "user_id": "u2",
            "analysis_id": "a1",
            "name": "Theirs",
            "tags": ["mine"],
            "category": "other",
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    theirs = r.json()
    assert theirs["tags"] == ["mine"] and theirs["category"] == "other"

    r = await client.get(f"{API}/saved-analyses/s1", headers=h)
    assert r.status_code == 200 and r.json() == saved
    r = await client.get(f"{API}/saved-analyses", headers=h)
    assert r.status_code == 200
    assert r.json() == {"items": [theirs, saved], "next_cursor": None}
    r = await client.get(f"{API}/saved-analyses", params={"user_id": "u1"}, headers=h)
    assert [s["saved_id"] for s in r.json()["items"]] == ["s1"]
    r = await client.get(f"{API}/saved-analyses", params={"limit": 1}, headers=h)
    assert [s["saved_id"] for s in r.json()["items"]] == [theirs["saved_id"]]

    r = await client.delete(f"{API}/saved-analyses/s1", headers=h)
    assert r.status_code == 204 and r.content == b""
    error(await client.get(f"{API}/saved-analyses/s1", headers=h), 404, "not_found")
    error(await client.delete(f"{API}/saved-analyses/s1", headers=h), 404, "not_found")
    r = await client.get(f"{API}/saved-analyses", headers=h)
    assert [s["saved_id"] for s in r.json()["items"]] == [theirs["saved_id"]]
    assert await SavedAnalysis.find({"org_id": "org-a"}).count() == 1
    actions = {a.action for a in await AuditLog.find({"resource_type": "saved_analysis"}).to_list()}
    assert actions == {"analysis_saved", "saved_analysis_deleted"}


async def test_saved_analysis_errors_write_nothing(client, h, other):
    await create(client, h, analysis_id="a1", title="Vol")
    r = await client.post(
        f"{API}/saved-analyses",
        json={"saved_id": "s1", "user_id": "u1", "analysis_id": "a1", "name": "Mine"},
        headers=h,
    )
    assert r.status_code == 201
    await create(client, other, analysis_id="b1", title="B's")
    before = await db_state()
    ok = {"user_id": "u1", "analysis_id": "a1", "name": "n"}
    for body, field in [
        ({"analysis_id": "a1", "name": "n"}, "user_id"),
        ({"user_id": "u1", "name": "n"}, "analysis_id"),
        ({"user_id": "u1", "analysis_id": "a1"}, "name"),
        ({**ok, "name": ""}, "name"),
        ({**ok, "name": "x" * 301}, "name"),
        ({**ok, "tags": [""]}, "tags.0"),
        ({**ok, "template_variables": "x"}, "template_variables"),
        ({**ok, "saved_id": "$x"}, "saved_id"),
        ({**ok, "usage_count": 3}, "usage_count"),
    ]:
        r = await client.post(f"{API}/saved-analyses", json=body, headers=h)
        assert field in fields(error(r, 422, "invalid")), body
    # Unknown analysis, another org's analysis, existing saved_id.
    r = await client.post(f"{API}/saved-analyses", json={**ok, "analysis_id": "nope"}, headers=h)
    error(r, 404, "not_found")
    r = await client.post(f"{API}/saved-analyses", json={**ok, "analysis_id": "b1"}, headers=h)
    error(r, 404, "not_found")
    r = await client.post(f"{API}/saved-analyses", json={**ok, "saved_id": "s1"}, headers=h)
    error(r, 409, "conflict")
    # Another org cannot see or delete it.
    error(await client.get(f"{API}/saved-analyses/s1", headers=other), 404, "not_found")
    error(await client.delete(f"{API}/saved-analyses/s1", headers=other), 404, "not_found")
    r = await client.get(f"{API}/saved-analyses", headers=other)
    assert r.json() == {"items": [], "next_cursor": None}
    for query, field in [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("foo=1", "foo"),
        ("user_id=%24ne", "user_id"),
    ]:
        r = await client.get(f"{API}/saved-analyses?{query}", headers=h)
        assert field in fields(error(r, 422, "invalid")), query
    assert await db_state() == before


# -- executions --------------------------------------------------------------------------------


async def test_execution_happy_path_pending_running_success(client, h):
    r = await client.post(f"{API}/threads", json={"thread_id": "t1", "user_id": "u1"}, headers=h)
    assert r.status_code == 201
    r = await client.post(
        f"{API}/threads/t1/messages",
        json={"message_id": "m1", "role": "assistant", "content": "running it"},
        headers=h,
    )
    assert r.status_code == 201
    created = await start_run(
        client,
        h,
        execution_id="e1",
        user_id="u1",
        thread_id="t1",
        message_id="m1",
        question="vol?",
        generated_script="print(1)",
        parameters=HOSTILE,
        mcp_calls=["prices"],
        metadata={"k.v": 1},
    )
    assert set(created) == EXECUTION_KEYS
    assert created["status"] == "pending" and created["execution_id"] == "e1"
    assert created["started_at"] is None and created["completed_at"] is None
    assert created["parameters"] == HOSTILE and created["metadata"] == {"k.v": 1}
    assert created["result"] is None and created["cache_hit"] is False
    assert ISO_MS.match(created["created_at"]) and ISO_MS.match(created["updated_at"])
    r = await client.get(f"{API}/executions/e1", headers=h)
    assert r.status_code == 200 and r.json() == created

    r = await patch(client, h, "e1", status="running")
    assert r.status_code == 200, r.text
    running = r.json()
    assert set(running) == EXECUTION_KEYS
    assert running["status"] == "running" and ISO_MS.match(running["started_at"])
    assert running["completed_at"] is None
    assert (await Message.find_one({"message_id": "m1"})).execution_status == "running"

    await asyncio.sleep(0.01)
    result = {"rows": [{"$sum": 3, "a.b": None}], "nested": {"deep": [1, [2, [3]]]}}
    r = await patch(
        client,
        h,
        "e1",
        status="success",
        result=result,
        warnings=["slow"],
        mcp_calls=["prices", "fx"],
        mcp_errors={"fx": "timeout"},
        memory_used_mb=12.5,
        cpu_percent=40.0,
        cache_hit=True,
        cache_key="k1",
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "success" and ISO_MS.match(done["completed_at"])
    assert done["started_at"] == running["started_at"]
    assert done["result"] == result and done["warnings"] == ["slow"]
    assert done["mcp_calls"] == ["prices", "fx"] and done["mcp_errors"] == {"fx": "timeout"}
    assert done["memory_used_mb"] == 12.5 and done["cpu_percent"] == 40.0
    assert done["cache_hit"] is True and done["cache_key"] == "k1"
    assert isinstance(done["execution_ms"], int) and done["execution_ms"] >= 10
    assert (await client.get(f"{API}/executions/e1", headers=h)).json() == done
    assert (await Message.find_one({"message_id": "m1"})).execution_status == "success"

    changes = await AuditLog.find({"org_id": "org-a", "resource_id": "e1"}).to_list()
    assert sorted(
        (a.action, (a.before or {}).get("status"), a.after["status"]) for a in changes
    ) == [
        ("execution_created", None, "pending"),
        ("execution_status_changed", "pending", "running"),
        ("execution_status_changed", "running", "success"),
    ]


async def test_execution_failed_path(client, h):
    await start_run(client, h, execution_id="e1")
    assert (await patch(client, h, "e1", status="running")).status_code == 200
    r = await patch(client, h, "e1", status="failed", error="boom", execution_ms=77)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "failed" and r.json()["error"] == "boom"
    assert r.json()["execution_ms"] == 77 and ISO_MS.match(r.json()["completed_at"])


async def test_impossible_transitions_are_409_and_change_nothing(client, h):
    await start_run(client, h, execution_id="pending")
    await start_run(client, h, execution_id="done")
    assert (await patch(client, h, "done", status="running")).status_code == 200
    assert (await patch(client, h, "done", status="success", result={"x": 1})).status_code == 200
    await start_run(client, h, execution_id="failed")
    assert (await patch(client, h, "failed", status="running")).status_code == 200
    assert (await patch(client, h, "failed", status="failed")).status_code == 200
    await start_run(client, h, execution_id="running")
    assert (await patch(client, h, "running", status="running")).status_code == 200

    before = await db_state()
    for execution_id, status in [
        ("pending", "success"),
        ("pending", "failed"),
        ("running", "running"),
        ("done", "running"),
        ("done", "failed"),
        ("done", "success"),
        ("failed", "running"),
        ("failed", "success"),
    ]:
        r = await patch(client, h, execution_id, status=status, result={"late": True})
        err = error(r, 409, "invalid_transition")
        assert status in err["message"], err
    assert await db_state() == before
    assert (await Execution.find_one({"execution_id": "done"})).result == {"x": 1}


async def test_concurrent_transitions_only_one_wins(client, h):
    await start_run(client, h, execution_id="e1")
    responses = await asyncio.gather(*(patch(client, h, "e1", status="running") for _ in range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 7
    changes = await AuditLog.find(
        {"resource_id": "e1", "action": "execution_status_changed"}
    ).count()
    assert changes == 1


async def test_execution_errors_write_nothing(client, h, other):
    await start_run(client, h, execution_id="e1")
    before = await db_state()
    for body, field in [
        ({"status": "running"}, "status"),  # a new run is always pending
        ({"execution_id": "$x"}, "execution_id"),
        ({"parameters": []}, "parameters"),
        ({"mcp_calls": "x"}, "mcp_calls"),
        ({"thread_id": {"$ne": 1}}, "thread_id"),
        ({"started_at": "2024-01-01T00:00:00Z"}, "started_at"),
    ]:
        r = await client.post(f"{API}/executions", json=body, headers=h)
        assert field in fields(error(r, 422, "invalid")), body
    error(await client.post(f"{API}/executions", json={"execution_id": "e1"}, headers=h), 409)
    for body, field in [
        ({}, "status"),
        ({"status": "pending"}, "status"),
        ({"status": "RUNNING"}, "status"),
        ({"status": "running", "foo": 1}, "foo"),
        ({"status": "running", "cpu_percent": -1}, "cpu_percent"),
        ({"status": "running", "execution_ms": "5"}, "execution_ms"),
        ({"status": "running", "result": [1]}, "result"),
        ({"status": "running", "started_at": "2024-01-01T00:00:00Z"}, "started_at"),
    ]:
        r = await client.patch(f"{API}/executions/e1", json=body, headers=h)
        assert field in fields(error(r, 422, "invalid")), body
    error(await patch(client, h, "nope", status="running"), 404, "not_found")
    error(await patch(client, h, "%24ne", status="running"), 404, "not_found")
    error(await client.get(f"{API}/executions/nope", headers=h), 404, "not_found")
    # Another org's run does not exist for org-b.
    error(await client.get(f"{API}/executions/e1", headers=other), 404, "not_found")
    error(await patch(client, other, "e1", status="running"), 404, "not_found")
    assert await db_state() == before
    assert (await Execution.find_one({"execution_id": "e1"})).status == "pending"


# -- shared error behaviour of every endpoint here ----------------------------------------------

ENDPOINTS = [
    ("POST", "/analyses", {"title": "t"}, "ingest"),
    ("GET", "/analyses", None, "read"),
    ("GET", "/analyses/a1", None, "read"),
    ("POST", "/analyses/a1/reuse", {}, "ingest"),
    ("POST", "/saved-analyses", {"user_id": "u1", "analysis_id": "a1", "name": "n"}, "ingest"),
    ("GET", "/saved-analyses", None, "read"),
    ("GET", "/saved-analyses/s1", None, "read"),
    ("DELETE", "/saved-analyses/s1", None, "ingest"),
    ("POST", "/executions", {}, "ingest"),
    ("GET", "/executions/e1", None, "read"),
    ("PATCH", "/executions/e1", {"status": "running"}, "ingest"),
]


@pytest.fixture
async def world(client, h):
    """a1 (a template), s1 saved from it, e1 pending."""
    await create(client, h, analysis_id="a1", title="Vol", is_template=True)
    r = await client.post(
        f"{API}/saved-analyses",
        json={"saved_id": "s1", "user_id": "u1", "analysis_id": "a1", "name": "n"},
        headers=h,
    )
    assert r.status_code == 201
    await start_run(client, h, execution_id="e1")


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
async def test_auth_and_scope_errors(client, make_key, world, method, path, body, scope):
    before = await db_state()
    for headers in [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic eDp5"},
        {"Authorization": "Bearer ca_0123456789abcdef_secret"},
    ]:
        r = await client.request(method, API + path, json=body, headers=headers)
        error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
    lacking = await make_key("org-a", *[s for s in ("ingest", "read", "share") if s != scope])
    error(await client.request(method, API + path, json=body, headers=lacking), 403, "forbidden")
    assert await db_state() == before
    admin = await make_key("org-a", "admin")
    r = await client.request(method, API + path, json=body, headers=admin)
    assert r.status_code in (200, 201, 204), r.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [(m, p, b) for m, p, b, _ in ENDPOINTS if any(i in p for i in ("a1", "s1", "e1"))],
)
async def test_another_orgs_ids_are_404_and_untouched(client, world, other, method, path, body):
    before = await db_state()
    r = await client.request(method, API + path, json=body, headers=other)
    error(r, 404, "not_found")
    assert await db_state() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/analyses/a1/reuse"),
        ("POST", "/saved-analyses"),
        ("POST", "/executions"),
        ("PATCH", "/executions/e1"),
        ("POST", "/analyses"),
    ],
)
async def test_bodies_that_are_not_json_objects(client, h, world, method, path):
    before = await db_state()
    for content, headers, status, code in [
        (b'{"title": "t", "status": "running"}', {"content-type": "text/plain"}, 415, None),
        (b'{"title": "t", "status": "running"}', {}, 415, "unsupported_media_type"),
        (b'{"title": ', JSON, 400, "bad_request"),
        (b"", JSON, 400, "bad_request"),
        (b'{"title": Infinity}', JSON, 400, "bad_request"),
        (b"[]", JSON, 422, "invalid"),
        (b"42", JSON, 422, "invalid"),
    ]:
        r = await client.request(method, API + path, content=content, headers={**h, **headers})
        error(r, status, code)
    assert await db_state() == before


async def test_wrong_methods_and_unknown_ids(client, h, world):
    before = await db_state()
    for method, path in [
        ("PUT", "/analyses"),
        ("DELETE", "/analyses/a1"),
        ("PATCH", "/analyses/a1"),
        ("GET", "/analyses/a1/reuse"),
        ("PUT", "/saved-analyses/s1"),
        ("DELETE", "/saved-analyses"),
        ("PUT", "/executions"),
        ("DELETE", "/executions/e1"),
        ("PUT", "/executions/e1"),
    ]:
        r = await client.request(method, API + path, json={}, headers=h)
        error(r, 405, "method_not_allowed")
    for path in [
        "/analyses/nope",
        "/analyses/%24where",
        "/saved-analyses/nope",
        "/saved-analyses/" + "x" * 200,
        "/executions/nope",
        "/executions/a%20b",
    ]:
        error(await client.get(API + path, headers=h), 404, "not_found")
    error(await client.delete(f"{API}/saved-analyses/%24ne", headers=h), 404, "not_found")
    assert await db_state() == before
