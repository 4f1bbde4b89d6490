"""Lists of seed 001's five reads in the service layer: a user's 1,000 threads in one page and
their keyset paging across ties without `$or` (older cursors still read), message pages
bounded by count and bytes and built as the API shows them, analyses and executions paged
newest first, and the indexes the execution lists need (migration 0006)."""

from datetime import UTC, datetime, timedelta

import bson
import pytest

from chatadmin import search
from chatadmin.exceptions import Invalid
from chatadmin.indexes import signature_of_spec
from chatadmin.migrations import m0006_execution_lists as m0006
from chatadmin.models import Analysis, Execution, Message, Thread
from chatadmin.models.message import MessageOut
from chatadmin.services import analyses, executions, messages, pagination, threads
from chatadmin.services.pagination import encode_cursor
from tests.commands import RECORDER

pytestmark = pytest.mark.usefixtures("database")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Activity times with ties: 3 threads at T0, 1 at T0-1ms, 5 at T0-2ms, ... (41 threads).
TIES = [3, 1, 5, 2, 7, 1, 4, 6, 1, 3, 8]


async def _threads_at(counts: list[int], org="org-a", user="u1", prefix="t") -> list[str]:
    """Threads whose activity ties in groups (`counts[i]` threads at T0 - i ms), stored in one
    write; returns their ids in list order (newest first, then id descending)."""
    batch, order = [], []
    for i, count in enumerate(counts):
        ids = [f"{prefix}{i:02d}-{j}" for j in range(count)]
        when = T0 - timedelta(milliseconds=i)
        batch += [threads.new_thread(org, user, thread_id=t, created_at=when) for t in ids]
        order += sorted(ids, reverse=True)
    await threads.create_threads(org, batch)
    return order


async def _pages(list_fn, limit: int, key: str = "thread_id", **kw) -> list[list[str]]:
    """Every page of a list, as the `key` of each item; fails if the paging does not end."""
    pages, cursor = [], None
    while True:
        page = await list_fn(limit=limit, cursor=cursor, **kw)
        pages.append([getattr(x, key) for x in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 200, "the paging does not end"


def _list_threads(**kw):
    return threads.list_threads("org-a", user_id="u1", **kw)


# -- threads ---------------------------------------------------------------------------------


async def test_a_thousand_threads_come_in_one_page():
    order = await _threads_at([1] * 1001)
    page = await _list_threads(limit=1000)
    assert [t.thread_id for t in page.items] == order[:1000]
    assert page.next_cursor is not None
    rest = await _list_threads(limit=1000, cursor=page.next_cursor)
    assert [t.thread_id for t in rest.items] == order[1000:] and rest.next_cursor is None
    assert len((await _list_threads(limit=5000)).items) == 1000  # at most 1,000 a page


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 7, 40, 41])
async def test_paging_across_ties_loses_and_repeats_nothing(limit):
    order = await _threads_at(TIES)
    with RECORDER.recording() as sent:
        pages = await _pages(_list_threads, limit)
    assert [t for p in pages for t in p] == order
    assert all(len(p) == limit for p in pages[:-1])
    finds = [f for s in sent if s.collection == "chat_sessions" for f in s.filters]
    assert len(finds) == len(pages)  # one read a page
    assert not any("$or" in f for f in finds)  # ranges only: nx-27017 scans an $or in Python


async def _pages_from(cursor: str | None, limit: int) -> list[str]:
    """The ids of every page from `cursor` on."""
    out = []
    while cursor:
        page = await _list_threads(limit=limit, cursor=cursor)
        out += [t.thread_id for t in page.items]
        cursor = page.next_cursor
    return out


async def test_cursors_of_the_former_kind_still_page_from_where_they_stood():
    order = await _threads_at(TIES)
    stored = {t.thread_id: t for t in await Thread.find({"org_id": "org-a"}).to_list()}
    for i in (0, 2, 3, 8, 20, 39):
        last = stored[order[i]]
        old = encode_cursor({"a": last.last_activity_ms, "t": last.thread_id})
        with RECORDER.recording() as sent:
            page = await _list_threads(limit=4, cursor=old)
        assert [t.thread_id for t in page.items] == order[i + 1 : i + 5]
        assert any("$or" in f for s in sent for f in s.filters)  # read as when it was issued
        assert await _pages_from(old, 4) == order[i + 1 :]


async def test_threads_whose_activity_changes_between_pages_cost_no_other_row():
    order = await _threads_at(TIES)
    first = await _list_threads(limit=5)  # ends on the first of five threads at T0 - 2 ms
    shown = [t.thread_id for t in first.items]
    # Meanwhile a shown thread gets a message (it moves to the top), and new threads appear at
    # the cursor's ms with ids that sort before it (passed already: the list does not go back).
    later = T0 + timedelta(seconds=1)
    await messages.append_message("org-a", shown[0], role="user", content="x", created_at=later)
    when = datetime.fromtimestamp(first.items[-1].last_activity_ms / 1000, UTC)
    extra = [f"z{i}" for i in range(9)]
    await threads.create_threads(
        "org-a", [threads.new_thread("org-a", "u1", thread_id=t, created_at=when) for t in extra]
    )
    assert await _pages_from(first.next_cursor, 4) == [t for t in order if t not in shown]


async def test_many_ties_at_one_ms_fall_back_to_the_or(monkeypatch):
    monkeypatch.setattr(pagination, "MAX_TIES", 3)
    order = await _threads_at([12, 2])
    with RECORDER.recording() as sent:
        pages = await _pages(_list_threads, 2)
    assert [t for p in pages for t in p] == order
    finds = [f for s in sent if s.collection == "chat_sessions" for f in s.filters]
    assert any("$or" in f for f in finds)


@pytest.mark.parametrize(
    "cursor",
    [
        encode_cursor({"ms": 1, "id": "x", "n": 0}),  # counts nothing shown
        encode_cursor({"ms": 1, "id": "x", "n": -4}),
        encode_cursor({"ms": 1, "id": "x"}),
        encode_cursor({"ms": 1, "id": "x", "n": "2"}),
        encode_cursor({"a": 1, "t": "x", "n": 1}),
        encode_cursor({"ms": 1, "id": "x", "n": 2**63}),
    ],
)
async def test_cursors_that_are_not_one_of_ours_are_invalid(cursor):
    with pytest.raises(Invalid):
        await _list_threads(cursor=cursor)


async def test_huge_tie_counts_in_a_cursor_are_read_with_the_or():
    order = await _threads_at(TIES)
    forged = encode_cursor({"ms": 2**62, "id": "t99", "n": 2**62})
    assert [t.thread_id for t in (await _list_threads(limit=50, cursor=forged)).items] == order


async def test_listed_metadata_keys_are_restored():
    meta = {"$gt": 1, "a.b": {"c.d": [{"$e": None}]}}
    await threads.create_thread("org-a", "u1", thread_id="t1", metadata=meta)
    (item,) = (await _list_threads()).items
    assert item.metadata == meta


# -- messages --------------------------------------------------------------------------------


async def _append_many(thread_id: str, count: int, text: str = "", org="org-a") -> None:
    batch = [
        messages.build_message(org, thread_id, role="user", content=text or f"message {i}")
        for i in range(count)
    ]
    done = await messages.insert_messages(org, batch)
    assert {d.status for d in done} == {"created"}


async def test_a_page_holds_up_to_500_messages():
    await threads.create_thread("org-a", "u1", thread_id="t1")
    await _append_many("t1", 501)
    page = await messages.list_messages("org-a", "t1", limit=500)
    assert [m.seq for m in page.items] == list(range(500)) and page.next_cursor
    assert len((await messages.list_messages("org-a", "t1", limit=2000)).items) == 500
    rest = await messages.list_messages("org-a", "t1", limit=500, cursor=page.next_cursor)
    assert [m.seq for m in rest.items] == [500] and rest.next_cursor is None


def _cut(sizes: list[int], limit: int, budget: int) -> int:
    """How many messages a page holds: up to `limit`, stopping once they pass `budget`."""
    held = total = 0
    for size in sizes:
        if held == limit or total > budget:
            break
        held, total = held + 1, total + size
    return held


@pytest.mark.parametrize("budget", [1, 5_000, 20_000, 10**9])
async def test_a_page_stops_once_its_messages_pass_the_byte_budget(budget):
    await threads.create_thread("org-a", "u1", thread_id="t1")
    for i, n in enumerate([3, 1, 7, 2, 9, 1, 4, 6]):  # messages of 1 to 9 KB
        await _append_many("t1", 1, text=f"{i} " + "x" * (n * 1000))
    stored = await Message.get_pymongo_collection().find({"org_id": "org-a"}).sort("seq").to_list()
    sizes = [len(bson.encode(d)) for d in stored]
    seqs, cursor, pages = [], None, 0
    while True:
        page = await messages.list_messages("org-a", "t1", limit=5, cursor=cursor, max_bytes=budget)
        held = _cut(sizes[len(seqs) :], 5, budget)
        assert len(page.items) == held >= 1
        seqs += [m.seq for m in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seqs == list(range(len(sizes)))
    if budget == 1:  # every message passes it alone: one a page
        assert pages == len(sizes)


async def test_the_default_budget_cuts_a_page_of_large_messages():
    await threads.create_thread("org-a", "u1", thread_id="t1")
    for _ in range(12):  # ~0.9 MB each (the text is stored twice: content and text)
        await _append_many("t1", 1, text="y" * 450_000)
    page = await messages.list_messages("org-a", "t1", limit=500)
    stored = await Message.get_pymongo_collection().find({"org_id": "org-a"}).sort("seq").to_list()
    held = _cut([len(bson.encode(d)) for d in stored], 500, 8 * 1024 * 1024)
    assert len(page.items) == held < 12 and page.next_cursor
    rest = await messages.list_messages("org-a", "t1", limit=500, cursor=page.next_cursor)
    assert [m.seq for m in page.items + rest.items] == list(range(12))


async def test_listed_messages_are_what_the_api_shows_of_each():
    await threads.create_thread("org-a", "u1", thread_id="t1")
    hostile = {"$gt": 1, "a.b": {"$where": ["x", {"c.d": None}]}, "ü": "\u2603"}
    await messages.append_message("org-a", "t1", role="user", content="plain", metadata=hostile)
    rich, _analysis, _run = await messages.add_assistant_message_with_analysis(
        "org-a",
        "t1",
        content=[
            {"type": "text", "text": "see"},
            {"type": "tool_use", "id": "tu1", "name": "prices", "input": hostile},
        ],
        analysis={"title": "Vol", "parameters": hostile, "result": {"body": [{"key": "k"}]}},
        execution={"status": "running"},
        question_context={"original_question": "vol?", "query_type": "complete"},
        ai_metadata={"model": "m", "input_tokens": 3, "output_tokens": 4, "response_ms": 9},
        metadata=hostile,
    )
    await messages.set_feedback("org-a", rich.message_id, is_helpful=True, rating=4)
    listed = (await messages.list_messages("org-a", "t1")).items
    assert len(listed) == 2
    for item in listed:
        stored = await messages.get_message("org-a", item.message_id)
        want = MessageOut.model_validate(stored).model_dump(mode="json")
        assert item.model_dump(mode="json") == want
    assert listed[1].feedback.rating == 4 and listed[1].metadata == hostile


async def test_messages_stored_before_a_field_existed_are_listed_with_its_default():
    await threads.create_thread("org-a", "u1", thread_id="t1")
    await _append_many("t1", 2)
    await Message.get_pymongo_collection().update_many(
        {"org_id": "org-a"}, {"$unset": {"execution_status": "", "metadata": "", "text": ""}}
    )
    listed = (await messages.list_messages("org-a", "t1")).items
    assert [(m.execution_status, m.metadata, m.text) for m in listed] == [(None, {}, "")] * 2


# -- analyses --------------------------------------------------------------------------------


async def _analyses(counts: list[int], user="u1") -> list[str]:
    """Analyses of org-a created in groups at the same ms; returns their ids newest first."""
    order = []
    for i, count in enumerate(counts):
        ids = [f"{user}-a{i:02d}-{j}" for j in range(count)]
        for a in ids:
            when = T0 - timedelta(milliseconds=i)
            await analyses.create_analysis(
                "org-a", user_id=user, analysis_id=a, title=f"Vol {a}", created_at=when
            )
        order += sorted(ids, reverse=True)
    return order


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 41])
async def test_analyses_page_newest_first_without_loss_or_repeat(limit):
    order = await _analyses(TIES)
    await _analyses([2], user="u2")  # another user's: never listed
    pages = await _pages(analyses.find_analyses, limit, "analysis_id", org_id="org-a", user_id="u1")
    assert [a for p in pages for a in p] == order


async def test_a_thousand_analyses_come_in_one_page():
    batch = [
        Analysis(org_id="org-a", user_id="u1", analysis_id=f"a{i:04d}", title="t",
                 created_at=T0 - timedelta(seconds=i)).stamped().storage_fields()
        for i in range(1001)
    ]  # fmt: skip
    await Analysis.get_pymongo_collection().insert_many(batch)
    page = await analyses.find_analyses("org-a", user_id="u1", limit=1000)
    assert [a.analysis_id for a in page.items] == [f"a{i:04d}" for i in range(1000)]
    rest = await analyses.find_analyses("org-a", user_id="u1", limit=1000, cursor=page.next_cursor)
    assert [a.analysis_id for a in rest.items] == ["a1000"] and rest.next_cursor is None


async def test_text_searches_ranked_by_score_come_in_one_page():
    order = await _analyses(TIES)
    if search.ranks_by_score():  # text mode: one page, no cursor, a cursor is refused
        page = await analyses.find_analyses("org-a", q="vol", limit=5)
        assert len(page.items) == 5 and page.next_cursor is None
        first = await analyses.find_analyses("org-a", limit=5)
        with pytest.raises(Invalid):
            await analyses.find_analyses("org-a", q="vol", cursor=first.next_cursor)
    else:  # terms mode: newest first, paged like the list
        pages = await _pages(analyses.find_analyses, 5, "analysis_id", org_id="org-a", q="vol")
        assert [a for p in pages for a in p] == order


# -- executions ------------------------------------------------------------------------------


async def _runs(org="org-a") -> dict[str, list[str]]:
    """Executions of two threads and users in every status, some at the same ms; returns
    their ids newest first by thread, status and user, and all."""
    batch = []
    for i in range(30):
        batch.append(
            Execution(
                org_id=org,
                execution_id=f"ex{i:02d}",
                thread_id=f"t{i % 2}",
                user_id=f"u{i % 3}",
                status=("pending", "running", "success", "failed")[i % 4],
                created_at=T0 - timedelta(milliseconds=i // 3),  # three at each ms
            )
        )
    await executions.create_executions(org, batch)
    newest = sorted(batch, key=lambda r: (r.created_at_ms, r.execution_id), reverse=True)
    ids = {"all": [r.execution_id for r in newest]}
    for r in newest:
        for key in (r.thread_id, r.status, r.user_id):
            ids.setdefault(key, []).append(r.execution_id)
    return ids


@pytest.mark.parametrize("limit", [1, 2, 4, 30])
async def test_executions_list_by_thread_status_and_user_newest_first(limit):
    ids = await _runs()
    await _runs("org-b")  # the same ids in another org: never listed

    def listed(**kw):
        return _pages(executions.list_executions, limit, "execution_id", org_id="org-a", **kw)

    assert [x for p in await listed() for x in p] == ids["all"]
    assert [x for p in await listed(thread_id="t1") for x in p] == ids["t1"]
    assert [x for p in await listed(status="running") for x in p] == ids["running"]
    assert [x for p in await listed(user_id="u2") for x in p] == ids["u2"]
    both = [x for p in await listed(thread_id="t0", status="success") for x in p]
    assert both == [x for x in ids["t0"] if x in ids["success"]]
    assert await listed(thread_id="nothing") == [[]]


async def test_executions_of_another_org_are_not_listed():
    await _runs("org-b")
    page = await executions.list_executions("org-a", thread_id="t1")
    assert page.items == [] and page.next_cursor is None


async def test_a_thousand_executions_come_in_one_page():
    batch = [
        Execution(org_id="org-a", execution_id=f"ex{i:04d}", thread_id="t1",
                  created_at=T0 - timedelta(seconds=i))
        for i in range(1001)
    ]  # fmt: skip
    await executions.create_executions("org-a", batch)
    page = await executions.list_executions("org-a", thread_id="t1", limit=1000)
    assert len(page.items) == 1000 and page.next_cursor


async def test_an_unknown_execution_status_is_invalid():
    with pytest.raises(Invalid):
        await executions.list_executions("org-a", status="$ne")


async def test_migration_0006_builds_the_list_indexes_and_drops_the_one_it_replaces(database):
    coll = database.db[Execution.Settings.name]

    def keys(spec) -> tuple:
        return signature_of_spec(spec)[0]

    thread_index = next(
        name for name, spec in (await coll.index_information()).items()
        if keys(spec) == (("org_id", "key"), ("thread_id", "key"), ("created_at_ms", "key"))
    )  # fmt: skip
    await coll.drop_index(thread_index)
    await coll.create_index([("org_id", 1), ("thread_id", 1)], name="org_thread")
    changes = await m0006.apply(database.db)
    assert any("org_thread_created" in c for c in changes)
    assert any(c.startswith("dropped index executions.") for c in changes)
    present = {keys(spec) for spec in (await coll.index_information()).values()}
    assert (("org_id", "key"), ("thread_id", "key")) not in present
    for ix in Execution.Settings.indexes:
        assert keys(ix.document) in present
        assert ix.document["key"].keys() and next(iter(ix.document["key"])) == "org_id"
    assert await m0006.apply(database.db) == []
