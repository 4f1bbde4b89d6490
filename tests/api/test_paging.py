"""Seed 001's five reads through HTTP: `GET /threads` with 1,000 threads a page and paging
across ties (older cursors still read), `GET /threads/{id}` message pages bounded by count and
bytes, `GET /analyses` paged newest first, and `GET /executions` (filters, paging, org
isolation, scope, bad queries)."""

from datetime import UTC, datetime, timedelta

import pytest

from chatadmin import search
from chatadmin.models import Analysis, Execution
from chatadmin.services import executions, messages, threads
from chatadmin.services.pagination import encode_cursor
from tests.api.helpers import db_state, error, fields

pytestmark = pytest.mark.usefixtures("database")

API = "/api/v1"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TIES = [3, 1, 5, 2, 7, 1, 4]  # threads (or analyses) at T0, T0 - 1 ms, T0 - 2 ms, ...


@pytest.fixture
async def h(make_key):
    return await make_key("org-a", "ingest", "read")


async def _threads_at(counts: list[int], user="u1") -> list[str]:
    """org-a threads of `user` whose activity ties in groups; their ids as listed."""
    batch, order = [], []
    for i, count in enumerate(counts):
        ids = [f"t{i:03d}-{j}" for j in range(count)]
        when = T0 - timedelta(milliseconds=i)
        batch += [threads.new_thread("org-a", user, thread_id=t, created_at=when) for t in ids]
        order += sorted(ids, reverse=True)
    await threads.create_threads("org-a", batch)
    return order


async def _walk(client, h, path: str, key: str, limit: int, cursor: str | None = None) -> list:
    """The `key` of every item of every page of a list, from `cursor` on."""
    got, pages = [], 0
    while True:
        query = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        sep = "&" if "?" in path else "?"
        r = await client.get(f"{API}{path}{sep}{query}", headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "next_cursor"}
        got += [item[key] for item in body["items"]]
        cursor, pages = body["next_cursor"], pages + 1
        if cursor is None:
            return got
        assert len(body["items"]) == limit and pages < 200


# -- threads ---------------------------------------------------------------------------------


async def test_a_thousand_threads_in_one_page(client, h):
    order = await _threads_at([1] * 1001)
    r = await client.get(f"{API}/threads?user_id=u1&limit=1000", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [t["thread_id"] for t in body["items"]] == order[:1000] and body["next_cursor"]
    rest = await client.get(f"{API}/threads?limit=1000&cursor={body['next_cursor']}", headers=h)
    assert rest.json() == {"items": [rest.json()["items"][0]], "next_cursor": None}
    assert rest.json()["items"][0]["thread_id"] == order[1000]


@pytest.mark.parametrize("limit", [1, 2, 3, 6])
async def test_thread_pages_across_ties_lose_and_repeat_nothing(client, h, limit):
    order = await _threads_at(TIES)
    assert await _walk(client, h, "/threads", "thread_id", limit) == order


async def test_a_thread_cursor_issued_before_still_pages(client, h):
    order = await _threads_at(TIES)
    ms = int((T0 - timedelta(milliseconds=2)).timestamp() * 1000)
    old = encode_cursor({"a": ms, "t": order[6]})  # the 3rd of the five threads at T0 - 2 ms
    assert await _walk(client, h, "/threads", "thread_id", 3, old) == order[7:]


@pytest.mark.parametrize(
    "cursor",
    ["%24ne", encode_cursor({"ms": 1, "id": "x", "n": 0}), encode_cursor({"a": "1", "t": "x"})],
)
async def test_a_bad_thread_cursor_is_422(client, h, cursor):
    err = error(await client.get(f"{API}/threads?cursor={cursor}", headers=h), 422, "invalid")
    assert fields(err) == {"cursor"}


# -- messages --------------------------------------------------------------------------------


async def _messages(count: int, text: str = "") -> None:
    await threads.create_thread("org-a", "u1", thread_id="t1")
    for start in range(0, count, 100):
        batch = [
            messages.build_message("org-a", "t1", role="user", content=text or f"m{i}")
            for i in range(start, min(count, start + 100))
        ]
        await messages.insert_messages("org-a", batch)


async def test_a_thread_page_holds_up_to_500_messages(client, h):
    await _messages(501)
    r = await client.get(f"{API}/threads/t1?messages_limit=500", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [m["seq"] for m in body["messages"]] == list(range(500)) and body["next_cursor"]
    cursor = body["next_cursor"]
    rest = await client.get(f"{API}/threads/t1?messages_limit=500&cursor={cursor}", headers=h)
    assert [m["seq"] for m in rest.json()["messages"]] == [500]
    assert rest.json()["next_cursor"] is None


async def test_a_thread_page_stops_once_its_messages_pass_8_mb(client, h):
    await _messages(12, text="z" * 450_000)  # ~0.9 MB stored each (content and text)
    seqs, cursor, sizes = [], None, []
    while True:
        query = "messages_limit=500" + (f"&cursor={cursor}" if cursor else "")
        r = await client.get(f"{API}/threads/t1?{query}", headers=h)
        assert r.status_code == 200
        page = r.json()["messages"]
        seqs += [m["seq"] for m in page]
        sizes.append(len(r.content))
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seqs == list(range(12))
    assert len(sizes) == 2 and max(sizes) < 10 * 1024 * 1024  # not one 11 MB response


# -- analyses --------------------------------------------------------------------------------


async def _analyses(counts: list[int], user="u1") -> list[str]:
    """org-a analyses of `user` in groups at the same ms; their ids newest first."""
    batch, order = [], []
    for i, count in enumerate(counts):
        ids = [f"{user}-a{i:03d}-{j}" for j in range(count)]
        when = T0 - timedelta(milliseconds=i)
        batch += [
            Analysis(org_id="org-a", user_id=user, analysis_id=a, title="Vol", created_at=when)
            for a in ids
        ]
        order += sorted(ids, reverse=True)
    await Analysis.get_pymongo_collection().insert_many(
        [a.stamped().storage_fields() for a in batch]
    )
    return order


@pytest.mark.parametrize("limit", [1, 2, 5])
async def test_analyses_page_newest_first_without_loss_or_repeat(client, h, limit):
    order = await _analyses(TIES)
    await _analyses([3], user="u2")
    assert await _walk(client, h, "/analyses?user_id=u1", "analysis_id", limit) == order
    assert len(await _walk(client, h, "/analyses", "analysis_id", 1000)) == len(order) + 3


async def test_a_thousand_analyses_in_one_page(client, h):
    order = await _analyses([1] * 1001)
    r = await client.get(f"{API}/analyses?user_id=u1&limit=1000", headers=h)
    assert [a["analysis_id"] for a in r.json()["items"]] == order[:1000]
    assert r.json()["next_cursor"]


async def test_a_text_search_ranked_by_score_says_it_is_one_page(client, h):
    await _analyses(TIES)
    first = (await client.get(f"{API}/analyses?limit=2", headers=h)).json()["next_cursor"]
    r = await client.get(f"{API}/analyses?q=vol&limit=2&cursor={first}", headers=h)
    if search.ranks_by_score():
        assert fields(error(r, 422, "invalid")) == {"cursor"}
        r = await client.get(f"{API}/analyses?q=vol&limit=2", headers=h)
        assert len(r.json()["items"]) == 2 and r.json()["next_cursor"] is None
    else:
        assert r.status_code == 200 and r.json()["next_cursor"]
    doc = (await client.get(f"{API}/openapi.json")).json()
    params = {p["name"]: p for p in doc["paths"]["/analyses"]["get"]["parameters"]}
    assert "one page" in params["q"]["schema"]["description"]
    assert params["limit"]["schema"]["maximum"] == 1000 and "cursor" in params


# -- executions ------------------------------------------------------------------------------


async def _runs(org="org-a") -> list[Execution]:
    """30 executions over two threads, three users and every status, three at each ms."""
    batch = [
        Execution(
            org_id=org,
            execution_id=f"ex{i:02d}",
            thread_id=f"t{i % 2}",
            user_id=f"u{i % 3}",
            status=("pending", "running", "success", "failed")[i % 4],
            created_at=T0 - timedelta(milliseconds=i // 3),
        )
        for i in range(30)
    ]
    await executions.create_executions(org, batch)
    return sorted(batch, key=lambda r: (r.created_at_ms, r.execution_id), reverse=True)


@pytest.mark.parametrize("limit", [1, 4, 1000])
async def test_executions_by_thread_status_and_user_newest_first(client, h, limit):
    runs = await _runs()
    await _runs("org-b")

    def want(**kw) -> list[str]:
        return [r.execution_id for r in runs if all(getattr(r, k) == v for k, v in kw.items())]

    async def got(query: str) -> list[str]:
        return await _walk(client, h, f"/executions?{query}", "execution_id", limit)

    assert await got("") == want()
    assert await got("thread_id=t1") == want(thread_id="t1")
    assert await got("status=running") == want(status="running")
    assert await got("user_id=u2") == want(user_id="u2")
    assert await got("thread_id=t0&status=failed&user_id=u1") == want(
        thread_id="t0", status="failed", user_id="u1"
    )
    assert await got("thread_id=none") == []


async def test_executions_listed_show_what_a_get_shows(client, h):
    await _runs()
    listed = (await client.get(f"{API}/executions?thread_id=t1&limit=1", headers=h)).json()
    (item,) = listed["items"]
    one = await client.get(f"{API}/executions/{item['execution_id']}", headers=h)
    assert item == one.json()


async def test_another_orgs_key_lists_no_execution(client, make_key):
    await _runs("org-a")
    other = await make_key("org-b", "read", "admin")
    for query in ("", "?thread_id=t1", "?status=running", "?user_id=u1"):
        r = await client.get(f"{API}/executions{query}", headers=other)
        assert r.json() == {"items": [], "next_cursor": None}
    mine = await client.get(f"{API}/executions?limit=1", headers=await make_key("org-a", "read"))
    cursor = mine.json()["next_cursor"]
    r = await client.get(f"{API}/executions?cursor={cursor}", headers=other)  # a cursor is no key
    assert r.json() == {"items": [], "next_cursor": None}


async def test_listing_executions_needs_the_read_scope(client, make_key):
    await _runs()
    before = await db_state()
    for headers in ({}, {"Authorization": "Bearer nope"}):
        error(await client.get(f"{API}/executions", headers=headers), 401, "unauthorized")
    for scopes in (("ingest",), ("share",), ("ingest", "share")):
        lacking = await make_key("org-a", *scopes)
        error(await client.get(f"{API}/executions", headers=lacking), 403, "forbidden")
    assert await db_state() == before
    admin = await make_key("org-a", "admin")
    assert (await client.get(f"{API}/executions", headers=admin)).status_code == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=done", "status"),
        ("status=%24ne", "status"),
        ("status[%24ne]=x", "status[$ne]"),
        ("thread_id=%24where", "thread_id"),
        ('user_id={"%24gt":""}', "user_id"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=1&limit=2", "limit"),
        ("org_id=org-b", "org_id"),
        ("cursor=" + "A" * 1025, "cursor"),
        ("cursor=%25%25%25", "cursor"),
        ("cursor=" + encode_cursor({"ms": 1, "id": "x"}), "cursor"),
    ],
)
async def test_a_bad_executions_query_is_422(client, h, query, field):
    err = error(await client.get(f"{API}/executions?{query}", headers=h), 422, "invalid")
    assert field in fields(err)


async def test_the_executions_list_is_documented(client):
    doc = (await client.get(f"{API}/openapi.json")).json()
    op = doc["paths"]["/executions"]["get"]
    assert "`read` scope" in op["description"]
    names = {p["name"] for p in op["parameters"]}
    assert names == {"thread_id", "status", "user_id", "limit", "cursor"}
    assert set(op["responses"]) >= {"200", "401", "403", "422"}
