"""Threads: tenant-scoped create/get, newest-activity-first keyset lists, lifecycle, flags."""

from datetime import timedelta

import pytest

from chatadmin.clock import to_ms, utcnow
from chatadmin.exceptions import Conflict, Invalid, NotFound
from chatadmin.models import Thread
from chatadmin.models.thread import THREAD_LIST_EXCLUDE
from chatadmin.services import messages, threads
from chatadmin.services.pagination import encode_cursor

pytestmark = pytest.mark.usefixtures("database")


async def _thread(org="org-a", user="u1", **kw) -> Thread:
    return await threads.create_thread(org, user, **kw)


async def _all_pages(org="org-a", limit=2, **kw) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = await threads.list_threads(org, limit=limit, cursor=cursor, **kw)
        pages.append([t.thread_id for t in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 50, "pagination does not terminate"


# --- create / get -------------------------------------------------------------------------


async def test_create_sets_defaults_and_activity_from_creation_time():
    t = await _thread(title="Quarterly review", tags=["finance"])
    stored = await threads.get_thread("org-a", t.thread_id)
    assert stored.title == "Quarterly review" and stored.tags == ["finance"]
    assert stored.status == "active" and stored.message_count == 0 and stored.next_seq == 0
    assert stored.last_activity_ms == to_ms(stored.created_at) == stored.created_at_ms
    assert stored.is_pinned is False and stored.is_favorited is False


async def test_duplicate_thread_id_in_same_org_conflicts():
    await _thread(thread_id="t-1", title="first")
    with pytest.raises(Conflict):
        await _thread(thread_id="t-1", title="second")
    stored = await Thread.find({"org_id": "org-a", "thread_id": "t-1"}).to_list()
    assert len(stored) == 1 and stored[0].title == "first"


async def test_same_thread_id_in_another_org_is_allowed_and_isolated():
    a = await _thread(org="org-a", thread_id="shared-id", title="A's thread")
    b = await _thread(org="org-b", user="u9", thread_id="shared-id", title="B's thread")
    assert a.id != b.id
    assert (await threads.get_thread("org-a", "shared-id")).title == "A's thread"
    assert (await threads.get_thread("org-b", "shared-id")).title == "B's thread"
    await threads.rename("org-b", "shared-id", "B renamed")
    await threads.soft_delete("org-b", "shared-id")
    still_a = await threads.get_thread("org-a", "shared-id")
    assert still_a.title == "A's thread" and still_a.status == "active"
    listed_a = await threads.list_threads("org-a")
    assert [(t.org_id, t.title) for t in listed_a.items] == [("org-a", "A's thread")]


async def test_get_other_org_or_unknown_is_not_found():
    t = await _thread()
    with pytest.raises(NotFound):
        await threads.get_thread("org-b", t.thread_id)
    with pytest.raises(NotFound):
        await threads.get_thread("org-b", t.thread_id, include_deleted=True)
    with pytest.raises(NotFound):
        await threads.get_thread("org-a", "no-such-thread")


async def test_deleted_thread_is_hidden_unless_include_deleted():
    t = await _thread()
    await threads.soft_delete("org-a", t.thread_id)
    with pytest.raises(NotFound):
        await threads.get_thread("org-a", t.thread_id)
    found = await threads.get_thread("org-a", t.thread_id, include_deleted=True)
    assert found.status == "deleted" and found.thread_id == t.thread_id


# --- list -----------------------------------------------------------------------------------


async def test_list_is_newest_activity_first_and_a_new_message_moves_a_thread_to_top():
    now = utcnow()
    old = await _thread(title="old", created_at=now - timedelta(hours=3))
    mid = await _thread(title="mid", created_at=now - timedelta(hours=2))
    new = await _thread(title="new", created_at=now - timedelta(hours=1))
    page = await threads.list_threads("org-a")
    assert [t.thread_id for t in page.items] == [new.thread_id, mid.thread_id, old.thread_id]
    assert page.next_cursor is None

    await messages.append_message("org-a", old.thread_id, role="user", content="bump")
    page = await threads.list_threads("org-a")
    assert [t.thread_id for t in page.items] == [old.thread_id, new.thread_id, mid.thread_id]
    top = page.items[0]
    assert top.message_count == 1 and top.last_activity_ms > to_ms(now - timedelta(hours=1))


async def test_list_filters_by_user_and_never_shows_other_orgs():
    await _thread(user="u1", title="mine")
    await _thread(user="u2", title="theirs")
    await _thread(org="org-b", user="u1", title="other org")
    mine = await threads.list_threads("org-a", user_id="u1")
    assert [t.title for t in mine.items] == ["mine"]
    everyone = await threads.list_threads("org-a")
    assert sorted(t.title for t in everyone.items) == ["mine", "theirs"]


async def test_keyset_pages_have_no_duplicates_and_no_gaps_with_equal_timestamps():
    same = utcnow() - timedelta(minutes=10)
    ids = []
    for i in range(7):  # all share one activity time: only thread_id breaks ties
        ids.append((await _thread(thread_id=f"tie-{i}", created_at=same)).thread_id)
    for i in range(3):
        created = same + timedelta(seconds=i + 1)
        ids.append((await _thread(thread_id=f"later-{i}", created_at=created)).thread_id)
    pages = await _all_pages(limit=3)
    flat = [tid for page in pages for tid in page]
    assert len(flat) == len(set(flat)) == 10
    assert set(flat) == set(ids)
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert flat[:3] == ["later-2", "later-1", "later-0"]
    assert flat[3:] == sorted((f"tie-{i}" for i in range(7)), reverse=True)


async def test_keyset_pages_with_a_page_size_dividing_the_total_end_cleanly():
    same = utcnow()
    for i in range(4):
        await _thread(thread_id=f"t{i}", created_at=same)
    pages = await _all_pages(limit=2)
    # The page size is fetched plus one, so a full last page has no cursor to an empty page.
    assert pages == [["t3", "t2"], ["t1", "t0"]]


async def test_list_projection_leaves_out_heavy_fields():
    t = await _thread(title="heavy", tags=["x"], metadata={"channel": "web"})
    await Thread.get_pymongo_collection().update_one(
        {"org_id": "org-a", "thread_id": t.thread_id},
        {
            "$set": {
                "context_summary": {"topic": "x" * 1000},
                "key_insights": ["insight"],
                "analysis_ids": ["a1", "a2"],
                "notes": [{"author": "support-1", "text": "a note", "created_at_ms": 1}],
            }
        },
    )
    page = await threads.list_threads("org-a")
    (item,) = page.items
    assert item.title == "heavy" and item.tags == ["x"] and item.metadata == {"channel": "web"}
    dumped = item.model_dump()
    for name in THREAD_LIST_EXCLUDE:
        assert name not in dumped
    # The server honours the exclusion projection the list sends (no heavy field comes back).
    raw = await Thread.get_pymongo_collection().find_one(
        {"org_id": "org-a", "thread_id": t.thread_id}, {n: 0 for n in THREAD_LIST_EXCLUDE}
    )
    assert raw["title"] == "heavy"
    assert not set(THREAD_LIST_EXCLUDE) & set(raw)
    full = await threads.get_thread("org-a", t.thread_id)
    assert full.analysis_ids == ["a1", "a2"] and len(full.notes) == 1


async def test_status_filter_and_default_hides_deleted():
    active = await _thread(title="active")
    archived = await _thread(title="archived")
    deleted = await _thread(title="deleted")
    await threads.archive("org-a", archived.thread_id)
    await threads.soft_delete("org-a", deleted.thread_id)

    default = {t.thread_id for t in (await threads.list_threads("org-a")).items}
    assert default == {active.thread_id, archived.thread_id}
    for status, expected in (
        ("active", active), ("archived", archived), ("deleted", deleted),
    ):  # fmt: skip
        page = await threads.list_threads("org-a", status=status)
        assert [t.thread_id for t in page.items] == [expected.thread_id]
        assert page.items[0].status == status


@pytest.mark.parametrize("status", ["ACTIVE", "removed", "", "$ne"])
async def test_invalid_status_is_invalid(status):
    with pytest.raises(Invalid):
        await threads.list_threads("org-a", status=status)


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!!",
        "e30",  # {} : no keys
        encode_cursor({"a": 1}),  # a key missing
        encode_cursor({"a": "1", "t": "x"}),  # wrong type
        encode_cursor({"a": 1, "t": "x", "extra": 1}),  # a key too many
        encode_cursor({"a": 1.5, "t": "x"}),
        "A" * 2000,
    ],
)
async def test_bad_cursor_is_invalid(cursor):
    await _thread()
    with pytest.raises(Invalid):
        await threads.list_threads("org-a", cursor=cursor)


async def test_limit_below_one_is_invalid():
    with pytest.raises(Invalid):
        await threads.list_threads("org-a", limit=0)


# --- rename / archive / delete ------------------------------------------------------------


async def test_rename_strips_and_stamps_update_time():
    t = await _thread(created_at=utcnow() - timedelta(minutes=5))
    renamed = await threads.rename("org-a", t.thread_id, "  New title  ")
    assert renamed.title == "New title"
    assert renamed.updated_at_ms > t.created_at_ms
    assert (await threads.get_thread("org-a", t.thread_id)).title == "New title"
    max_title = "x" * 500
    assert (await threads.rename("org-a", t.thread_id, max_title)).title == max_title


@pytest.mark.parametrize("title", ["", "   ", "\n\t", "x" * 501])
async def test_rename_empty_or_too_long_is_invalid(title):
    t = await _thread(title="keep")
    with pytest.raises(Invalid):
        await threads.rename("org-a", t.thread_id, title)
    assert (await threads.get_thread("org-a", t.thread_id)).title == "keep"


async def test_rename_other_org_or_deleted_is_not_found():
    t = await _thread(title="keep")
    with pytest.raises(NotFound):
        await threads.rename("org-b", t.thread_id, "hijack")
    await threads.soft_delete("org-a", t.thread_id)
    with pytest.raises(NotFound):
        await threads.rename("org-a", t.thread_id, "while deleted")
    stored = await threads.get_thread("org-a", t.thread_id, include_deleted=True)
    assert stored.title == "keep"


async def test_archive_and_unarchive():
    t = await _thread()
    archived = await threads.archive("org-a", t.thread_id)
    assert archived.status == "archived" and archived.archived_at_ms > 0
    assert archived.archived_at is not None
    assert (await threads.get_thread("org-a", t.thread_id)).status == "archived"
    with pytest.raises(NotFound):  # only an active thread can be archived
        await threads.archive("org-a", t.thread_id)
    back = await threads.unarchive("org-a", t.thread_id)
    assert back.status == "active" and back.archived_at_ms == 0 and back.archived_at is None
    with pytest.raises(NotFound):  # only an archived thread can be unarchived
        await threads.unarchive("org-a", t.thread_id)
    with pytest.raises(NotFound):
        await threads.archive("org-b", t.thread_id)


async def test_soft_delete_and_restore():
    t = await _thread()
    await messages.append_message("org-a", t.thread_id, role="user", content="keep me")
    deleted = await threads.soft_delete("org-a", t.thread_id)
    assert deleted.status == "deleted" and deleted.deleted_at_ms > 0
    assert deleted.deleted_at is not None
    with pytest.raises(NotFound):
        await threads.soft_delete("org-a", t.thread_id)
    with pytest.raises(NotFound):
        await threads.restore("org-b", t.thread_id)
    restored = await threads.restore("org-a", t.thread_id)
    assert restored.status == "active" and restored.deleted_at_ms == 0
    with pytest.raises(NotFound):  # only a deleted thread can be restored
        await threads.restore("org-a", t.thread_id)
    page = await messages.list_messages("org-a", t.thread_id)
    assert [m.text for m in page.items] == ["keep me"]


async def test_archived_thread_can_be_deleted_and_restores_as_active():
    t = await _thread()
    await threads.archive("org-a", t.thread_id)
    await threads.soft_delete("org-a", t.thread_id)
    assert (await threads.restore("org-a", t.thread_id)).status == "active"


# --- pin / favorite / notes ---------------------------------------------------------------


async def test_pin_flag_set_by_update_still_matches_its_boolean_query():
    t = await _thread()
    other = await _thread()
    pinned = await threads.pin("org-a", t.thread_id)
    assert pinned.is_pinned is True
    found = await Thread.find({"org_id": "org-a", "is_pinned": True}).to_list()
    assert [x.thread_id for x in found] == [t.thread_id]
    raw = await Thread.get_pymongo_collection().find({"is_pinned": True}).to_list()
    assert [d["thread_id"] for d in raw] == [t.thread_id]
    unpinned = await Thread.find({"org_id": "org-a", "is_pinned": False}).to_list()
    assert [x.thread_id for x in unpinned] == [other.thread_id]
    listed = {x.thread_id: x for x in (await threads.list_threads("org-a")).items}
    assert listed[t.thread_id].is_pinned is True and listed[other.thread_id].is_pinned is False

    await threads.pin("org-a", t.thread_id, False)
    assert await Thread.find({"is_pinned": True}).to_list() == []
    assert (await threads.get_thread("org-a", t.thread_id)).is_pinned is False


async def test_favorite_flag_round_trips_and_matches_its_query():
    t = await _thread()
    fav = await threads.favorite("org-a", t.thread_id)
    assert fav.is_favorited is True
    found = await Thread.find({"org_id": "org-a", "is_favorited": True}).to_list()
    assert [x.thread_id for x in found] == [t.thread_id]
    await threads.favorite("org-a", t.thread_id, favorited=False)
    assert await Thread.find({"org_id": "org-a", "is_favorited": True}).count() == 0
    with pytest.raises(NotFound):
        await threads.favorite("org-b", t.thread_id)
    await threads.soft_delete("org-a", t.thread_id)
    with pytest.raises(NotFound):
        await threads.pin("org-a", t.thread_id)


@pytest.mark.parametrize("text", ["", "   ", "x" * 5001])
async def test_add_note_empty_or_too_long_is_invalid(text):
    t = await _thread()
    with pytest.raises(Invalid):
        await threads.add_note("org-a", t.thread_id, "alice", text)
    assert (await threads.get_thread("org-a", t.thread_id)).notes == []


async def test_add_note_other_org_or_deleted_is_not_found():
    t = await _thread()
    with pytest.raises(NotFound):
        await threads.add_note("org-b", t.thread_id, "eve", "sneaky")
    await threads.soft_delete("org-a", t.thread_id)
    with pytest.raises(NotFound):
        await threads.add_note("org-a", t.thread_id, "alice", "too late")
    stored = await threads.get_thread("org-a", t.thread_id, include_deleted=True)
    assert stored.notes == []


async def test_add_note_appends_in_order_without_touching_the_conversation():
    t = await _thread(title="conversation")
    await threads.add_note("org-a", t.thread_id, "alice", "  first note  ")
    updated = await threads.add_note("org-a", t.thread_id, "bob", "second note")
    assert [(n["author"], n["text"]) for n in updated.notes] == [
        ("alice", "first note"),
        ("bob", "second note"),
    ]
    assert all(n["created_at_ms"] > 0 and len(n["note_id"]) == 32 for n in updated.notes)
    stored = await threads.get_thread("org-a", t.thread_id)
    assert len(stored.notes) == 2
    assert stored.title == "conversation" and stored.message_count == 0 and stored.next_seq == 0
