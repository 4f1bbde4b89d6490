"""Threads (`chat_sessions`): create, list newest-activity-first, rename, archive, delete, pin."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pymongo import ReturnDocument

from chatadmin.clock import now_ms, stamp, to_ms, utcnow
from chatadmin.exceptions import Conflict, Invalid, NotFound
from chatadmin.models import Thread
from chatadmin.models.base import JsonObject, ms_property, new_id
from chatadmin.models.thread import (
    LIVE_STATUSES,
    THREAD_LIST_EXCLUDE,
    THREAD_PAGE_MAX,
    THREAD_STATUSES,
)
from chatadmin.realtime import events
from chatadmin.services.documents import insert_new
from chatadmin.services.effects import Effects
from chatadmin.services.pagination import (
    NEWEST_FIRST_CURSOR,
    NewestFirst,
    Page,
    clamp_limit,
    decode_cursor,
    newest_first,
)

LIVE = LIVE_STATUSES


class ThreadSummary(BaseModel):
    """A thread as listed: every field but the heavy ones."""

    thread_id: str
    org_id: str
    user_id: str
    title: str
    description: str | None = None
    type: str | None = None
    status: str
    is_pinned: bool = False
    is_favorited: bool = False
    tags: list[str] = []
    initial_source: str | None = None
    message_count: int = 0
    last_message_at_ms: int = 0
    last_activity_ms: int = 0
    total_tokens: int = 0
    created_at: Any = None
    updated_at_ms: int = 0
    metadata: JsonObject = {}  # its keys restored, as every read of a thread shows them

    last_message_at = ms_property("last_message_at_ms")
    updated_at = ms_property("updated_at_ms")


def _collection():
    return Thread.get_pymongo_collection()


def new_thread(org_id: str, user_id: str, **fields: Any) -> Thread:
    """A validated thread, not yet stored; its activity starts at its creation."""
    thread = Thread(org_id=org_id, user_id=user_id, **fields)
    thread.last_activity_ms = to_ms(thread.created_at)
    return thread


async def create_threads(
    org_id: str, batch: list[Thread], *, effects: Effects | None = None
) -> list[Thread]:
    """Store new threads in one write; returns those stored (an existing id is skipped).

    Side effects: the owner's `thread_count` and the day's `threads` counter. Plain inserts,
    not upserts: on nx-27017 an upsert by a field other than `_id` scans the collection.
    """
    own = effects is None
    effects = effects or Effects(org_id)
    await effects.begin({t.user_id for t in batch}, {t.created_at for t in batch})
    created = await insert_new(Thread, batch)
    for t in created:
        effects.count(t.user_id, t.created_at, threads=1)
        effects.bump_user(t.user_id, thread_count=1)
    if own:
        await effects.flush()
    return created


async def create_thread(org_id: str, user_id: str, **fields: Any) -> Thread:
    """Create a thread; an existing `thread_id` in the org raises Conflict."""
    thread = new_thread(org_id, user_id, **fields)
    if not await create_threads(org_id, [thread]):
        raise Conflict(f"thread {thread.thread_id!r} already exists")
    return thread


async def get_thread(org_id: str, thread_id: str, *, include_deleted: bool = False) -> Thread:
    """The thread, or NotFound (also for another org's id, and for deleted ones by default)."""
    query: dict[str, Any] = {"org_id": org_id, "thread_id": str(thread_id)}
    if not include_deleted:
        query["status"] = {"$in": LIVE}
    thread = await Thread.find_one(query)
    if thread is None:
        raise NotFound(f"thread {thread_id!r} not found")
    return thread


THREAD_ORDER = NewestFirst("last_activity_ms", "thread_id")
OLD_THREAD_CURSOR = {"a": int, "t": str}  # issued before cursors counted ties; still accepted
SUMMARIES = TypeAdapter(list[ThreadSummary])


def thread_position(cursor: str | None) -> dict[str, Any] | None:
    """Where a thread-list cursor stands: the current kind, or an older `{"a", "t"}` one (read
    with the `$or` on ties, as when it was issued)."""
    old = decode_cursor(cursor, NEWEST_FIRST_CURSOR, OLD_THREAD_CURSOR)
    if old is not None and "a" in old:
        return {"ms": old["a"], "id": old["t"], "n": None}
    return THREAD_ORDER.position(cursor)


def _list_query(org_id: str, user_id: str | None, status: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {"org_id": org_id}
    if user_id is not None:
        query["user_id"] = str(user_id)
    if status is None:
        query["status"] = {"$in": LIVE}
    elif status in THREAD_STATUSES:
        query["status"] = status
    else:
        raise Invalid(f"status must be one of {', '.join(THREAD_STATUSES)}")
    return query


async def list_threads(
    org_id: str,
    *,
    user_id: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[ThreadSummary]:
    """Threads by newest activity first, without heavy fields; keyset-paginated, up to
    `THREAD_PAGE_MAX` a page."""
    limit = clamp_limit(limit, maximum=THREAD_PAGE_MAX)
    query = _list_query(org_id, user_id, status)
    pos = thread_position(cursor)
    projection = {name: 0 for name in THREAD_LIST_EXCLUDE}
    docs, nxt = await newest_first(_collection(), query, THREAD_ORDER, limit, pos, projection)
    return Page(SUMMARIES.validate_python(docs), nxt)


async def _update(org_id: str, thread_id: str, statuses: list[str], changes: dict) -> Thread:
    doc = await _collection().find_one_and_update(
        {"org_id": org_id, "thread_id": str(thread_id), "status": {"$in": statuses}},
        {"$set": {**changes, **stamp()}},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        raise NotFound(f"thread {thread_id!r} not found")
    await events.touched(org_id, {str(thread_id)})
    return Thread.model_validate(doc)


EDITABLE = {"title", "description", "type", "tags", "is_pinned", "is_favorited", "initial_source",
            "metadata", "context_summary", "key_insights", "access_scope"}  # fmt: skip


async def edit_thread(org_id: str, thread_id: str, **fields: Any) -> Thread:
    """Change a thread's descriptive fields (the admin's edit); its counters are never
    written here, so a concurrent message append keeps them right."""
    unknown = set(fields) - EDITABLE
    if unknown:
        raise Invalid(f"cannot change {sorted(unknown)} of a thread here")
    current = await get_thread(org_id, thread_id, include_deleted=True)
    merged = Thread.model_validate({**current.model_dump(by_alias=True), **fields})
    changes = merged.storage_fields(set(fields))
    return await _update(org_id, thread_id, list(THREAD_STATUSES), changes)


async def rename(org_id: str, thread_id: str, title: str) -> Thread:
    title = title.strip()
    if not title or len(title) > 500:
        raise Invalid("title must be 1 to 500 characters")
    return await _update(org_id, thread_id, LIVE, {"title": title})


def status_fields(status: str, now: int | None = None) -> dict[str, Any]:
    """What a move to `status` sets, whichever door moves it: the status and when it was
    reached (an archive or delete time is cleared when the thread becomes active again)."""
    now = now_ms() if now is None else now
    if status == "archived":
        return {"status": status, "archived_at_ms": now}
    if status == "deleted":
        return {"status": status, "deleted_at_ms": now}
    return {"status": status, "archived_at_ms": 0, "deleted_at_ms": 0}


async def archive(org_id: str, thread_id: str) -> Thread:
    return await _update(org_id, thread_id, ["active"], status_fields("archived"))


async def unarchive(org_id: str, thread_id: str) -> Thread:
    return await _update(org_id, thread_id, ["archived"], status_fields("active"))


async def soft_delete(org_id: str, thread_id: str) -> Thread:
    """Mark deleted: reads then answer NotFound until restored; messages stay stored."""
    return await _update(org_id, thread_id, LIVE, status_fields("deleted"))


async def restore(org_id: str, thread_id: str) -> Thread:
    return await _update(org_id, thread_id, ["deleted"], status_fields("active"))


async def pin(org_id: str, thread_id: str, pinned: bool = True) -> Thread:
    return await _update(org_id, thread_id, LIVE, {"is_pinned": bool(pinned)})


async def favorite(org_id: str, thread_id: str, favorited: bool = True) -> Thread:
    return await _update(org_id, thread_id, LIVE, {"is_favorited": bool(favorited)})


async def add_note(org_id: str, thread_id: str, author: str, text: str) -> Thread:
    """A support note on a thread (notes never change the conversation itself)."""
    text = text.strip()
    if not text or len(text) > 5000:
        raise Invalid("a note must be 1 to 5000 characters")
    now = utcnow()
    doc = await _collection().find_one_and_update(
        {"org_id": org_id, "thread_id": str(thread_id), "status": {"$in": LIVE}},
        {
            # $addToSet, not $push: nx-27017's $push turns every sub-document of the array into
            # a JSON string. Each note has its own id, so $addToSet always appends.
            "$addToSet": {
                "notes": {
                    "note_id": new_id(),
                    "author": author,
                    "text": text,
                    "created_at_ms": to_ms(now),
                }
            },
            "$set": stamp(now),
        },
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        raise NotFound(f"thread {thread_id!r} not found")
    await events.touched(org_id, {str(thread_id)})
    return Thread.model_validate(doc)
