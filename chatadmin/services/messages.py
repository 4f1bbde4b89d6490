"""Messages: appended with an atomic, gap-free per-thread `seq`, with the thread's rollups,
the user's counts and the analytics kept in step by every write, soft delete and restore.

Every door (REST, /ingest, admin) writes through `insert_messages`. One `find_one_and_update`
per thread `$inc`s `next_seq` together with the counters and pushes a short *claim* per message
id; its filter requires that none of the claims is there yet. So when retrying clients send the
same messages concurrently, exactly one writer reserves their seqs and the others see the
claims and wait for that writer's insert: no seq is reserved twice, none is lost, no
transaction is needed. Messages older than the claim window are found by the id check before.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from chatadmin.clock import now_ms, to_ms
from chatadmin.exceptions import Conflict, Invalid, NotFound, TooLarge
from chatadmin.models import Analysis, Execution, Message, Thread
from chatadmin.models.analysis import AnalysisSnapshot
from chatadmin.models.blocks import render_text
from chatadmin.models.message import AiMetadata, Feedback
from chatadmin.models.size import document_size
from chatadmin.models.thread import CLAIMS_KEPT, LIVE_STATUSES
from chatadmin.realtime import events
from chatadmin.services import analytics
from chatadmin.services.effects import Effects
from chatadmin.services.pagination import Page, clamp_limit, decode_cursor, encode_cursor

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
CLAIM_WAIT_S = 5.0  # how long a writer waits for another's insert of the messages it claimed


def build_message(org_id: str, thread_id: str, **fields: Any) -> Message:
    """Validate a message before anything is written (seq assigned later)."""
    return _derived(Message(org_id=org_id, thread_id=thread_id, seq=0, **fields))


def _derived(message: Message) -> Message:
    """Fill the fields derived from others: text from the content, the query type, the error
    flag."""
    if not message.text:
        message.text = render_text(message.content)
    if message.question_context and not message.query_type:
        message.query_type = message.question_context.query_type
    message.has_error = message.status == "error" or message.error is not None
    return message


def check_size(message: Message, max_bytes: int) -> None:
    size = document_size(message)
    if size > max_bytes:
        raise TooLarge(f"message is {size} bytes; the limit is {max_bytes} bytes")


def thread_counters(message: Message, sign: int = 1) -> dict[str, int]:
    """What one live message adds to its thread's rollups (not `next_seq`: seqs stay used)."""
    meta = message.ai_metadata or AiMetadata()
    incs = {
        "message_count": 1,
        "total_tokens": meta.tokens(),
        "total_response_ms": meta.response_ms or 0,
        "response_count": int(meta.response_ms is not None),
        "error_count": int(message.has_error),
    }
    return {k: sign * v for k, v in incs.items()}


def _summed(parts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return {k: v for k, v in total.items() if v}


def claim_of(message_id: str) -> str:
    """The short digest a thread keeps of a message whose seq was reserved."""
    return hashlib.blake2b(message_id.encode(), digest_size=8).hexdigest()


@dataclass
class Inserted:
    """What became of one message given to `insert_messages`."""

    message: Message
    status: Literal["created", "exists", "not_found", "failed"]
    reason: str = ""


async def insert_messages(
    org_id: str,
    batch: list[Message],
    *,
    effects: Effects | None = None,
    known_new: bool = False,
) -> list[Inserted]:
    """Reserve seqs for new messages (per thread, atomically) and store them; in input order.

    `known_new`: the caller already looked the ids up (ingest plans creates and updates).
    Counters of the thread, the user and the analytics change only for stored messages.
    """
    outcome: dict[str, Inserted] = {}
    if not known_new and batch:
        ids = [m.message_id for m in batch]
        cursor = Message.get_pymongo_collection().find(
            {"org_id": org_id, "message_id": {"$in": ids}}, {"message_id": 1}
        )
        for doc in await cursor.to_list():
            outcome[doc["message_id"]] = Inserted(None, "exists", "already stored")  # type: ignore[arg-type]
    by_thread: dict[str, list[Message]] = {}
    for m in batch:
        if m.message_id not in outcome:
            by_thread.setdefault(m.thread_id, []).append(m)
    reserved = await asyncio.gather(
        *(_reserve(org_id, tid, msgs, outcome) for tid, msgs in by_thread.items())
    )
    ready = [m for msgs in reserved for m in msgs]
    await _store(org_id, ready, outcome)
    own = effects is None
    effects = effects or Effects(org_id)
    for m in ready:
        if outcome[m.message_id].status == "created":
            effects.count(m.user_id, m.created_at, **analytics.message_counters(m))
            effects.bump_user(m.user_id, to_ms(m.created_at), message_count=1)
    if own:
        await effects.flush()
    created = [m for m in ready if outcome[m.message_id].status == "created"]
    await events.publish_many(org_id, [(m.thread_id, "message.created", live(m)) for m in created])
    return [Inserted(m, outcome[m.message_id].status, outcome[m.message_id].reason) for m in batch]


LIVE_TEXT = 2000  # characters of a message's text carried by its live-tail event


def live(message: Message) -> dict[str, Any]:
    """What a live-tail event says of a message (readers fetch the whole one when they want)."""
    return {
        "message_id": message.message_id,
        "thread_id": message.thread_id,
        "seq": message.seq,
        "role": message.role,
        "user_id": message.user_id,
        "status": message.status,
        "text": message.text[:LIVE_TEXT],
        "truncated": len(message.text) > LIVE_TEXT,
        "deleted": message.deleted,
        "feedback": message.feedback.model_dump(mode="json") if message.feedback else None,
        "created_at": message.created_at.isoformat(),
    }


async def _reserve(
    org_id: str,
    thread_id: str,
    msgs: list[Message],
    outcome: dict[str, Inserted],
    retake: bool = True,
) -> list[Message]:
    """Claim the messages on their thread and reserve consecutive seqs; returns those reserved.

    Messages another writer claimed first are waited for; if that writer died before storing
    them, their claims are taken over once (`retake`).
    """
    threads = Thread.get_pymongo_collection()
    pending, waiting, reserved = list(msgs), [], []
    for _attempt in range(8):
        if not pending:
            break
        claims = [claim_of(m.message_id) for m in pending]
        last = max(to_ms(m.created_at) for m in pending)
        doc = await threads.find_one_and_update(
            {
                "org_id": org_id,
                "thread_id": thread_id,
                "status": {"$in": LIVE_STATUSES},
                "recent_claims": {"$nin": claims},
            },
            {
                "$inc": {
                    "next_seq": len(pending),
                    **_summed([thread_counters(m) for m in pending]),
                },
                "$max": {
                    "last_message_at_ms": last,
                    "last_activity_ms": last,
                    "updated_at_ms": last,
                },
                "$push": {"recent_claims": {"$each": claims, "$slice": -CLAIMS_KEPT}},
            },
            projection={"next_seq": 1, "user_id": 1},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            first = doc["next_seq"] - len(pending)
            for offset, m in enumerate(pending):
                m.seq = first + offset
                m.user_id = m.user_id or doc.get("user_id")
            reserved, pending = pending, []
            break
        thread = await threads.find_one(
            {"org_id": org_id, "thread_id": thread_id}, {"status": 1, "recent_claims": 1}
        )
        if thread is None or thread["status"] not in LIVE_STATUSES:
            for m in pending + waiting:
                outcome[m.message_id] = Inserted(m, "not_found", f"thread {thread_id!r} not found")
            return []
        taken = set(thread.get("recent_claims", [])) & set(claims)
        waiting += [m for m in pending if claim_of(m.message_id) in taken]
        pending = [m for m in pending if claim_of(m.message_id) not in taken]
    for m in pending:  # the thread kept changing under us
        outcome[m.message_id] = Inserted(m, "failed", "the thread is busy; retry")
    if waiting:
        orphans = await _await_claimed(org_id, waiting, outcome)
        if orphans and retake:
            await threads.update_one(
                {"org_id": org_id, "thread_id": thread_id},
                {"$pull": {"recent_claims": {"$in": [claim_of(m.message_id) for m in orphans]}}},
            )
            reserved += await _reserve(org_id, thread_id, orphans, outcome, retake=False)
        else:
            for m in orphans:
                outcome[m.message_id] = Inserted(m, "failed", "a concurrent write of it failed")
    return reserved


async def _await_claimed(
    org_id: str, msgs: list[Message], outcome: dict[str, Inserted]
) -> list[Message]:
    """Wait up to `CLAIM_WAIT_S` for the writer that claimed these messages to store them;
    returns the ones it did not store."""
    coll = Message.get_pymongo_collection()
    ids = [m.message_id for m in msgs]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLAIM_WAIT_S
    delay = 0.01
    while True:
        found = coll.find({"org_id": org_id, "message_id": {"$in": ids}}, {"message_id": 1})
        stored = {d["message_id"] async for d in found}
        if len(stored) == len(ids) or loop.time() >= deadline:
            break
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
    for m in msgs:
        if m.message_id in stored:
            outcome[m.message_id] = Inserted(m, "exists", "stored by a concurrent write")
    return [m for m in msgs if m.message_id not in stored]


async def _store(org_id: str, ready: list[Message], outcome: dict[str, Inserted]) -> None:
    """Insert the reserved messages in one unordered write; give back what failed."""
    if not ready:
        return
    for m in ready:
        outcome[m.message_id] = Inserted(m, "created")
    try:
        await Message.get_pymongo_collection().insert_many(
            [m.stamped().storage_fields() for m in ready], ordered=False
        )
    except BulkWriteError as exc:
        lost = []
        for err in exc.details.get("writeErrors", []):
            m = ready[err["index"]]
            dup = err.get("code") == 11000
            outcome[m.message_id] = Inserted(
                m,
                "exists" if dup else "failed",
                "stored by a concurrent write" if dup else "the message could not be stored",
            )
            lost.append(m)
        await _release(org_id, lost)


async def _release(org_id: str, lost: list[Message]) -> None:
    """Give back the counters of reserved messages that were not stored (their seqs stay
    unused unless they were the thread's last)."""
    by_thread: dict[str, list[Message]] = {}
    for m in lost:
        by_thread.setdefault(m.thread_id, []).append(m)
    threads = Thread.get_pymongo_collection()
    for tid, msgs in by_thread.items():
        key = {"org_id": org_id, "thread_id": tid}
        await threads.update_one(
            key,
            {
                "$inc": _summed([thread_counters(m, -1) for m in msgs]),
                "$pull": {"recent_claims": {"$in": [claim_of(m.message_id) for m in msgs]}},
            },
        )
        top = max(m.seq for m in msgs)
        seqs = sorted(m.seq for m in msgs)
        if seqs == list(range(top - len(msgs) + 1, top + 1)):  # a run at the tail: reuse it
            await threads.update_one(
                {**key, "next_seq": top + 1}, {"$inc": {"next_seq": -len(msgs)}}
            )


async def insert_message(
    message: Message,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    effects: Effects | None = None,
) -> Message:
    """Store one new message with the next seq of its thread (Conflict when its id exists)."""
    check_size(message, max_bytes)
    (done,) = await insert_messages(message.org_id, [message], effects=effects)
    if done.status == "exists":
        raise Conflict(f"message {message.message_id!r} already exists")
    if done.status == "not_found":
        raise NotFound(f"thread {message.thread_id!r} not found")
    if done.status == "failed":
        raise Conflict(done.reason)
    return message


async def append_message(
    org_id: str,
    thread_id: str,
    *,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    **fields: Any,
) -> Message:
    """Validate and append one message to a thread; returns it with its assigned `seq`."""
    return await insert_message(build_message(org_id, thread_id, **fields), max_bytes)


async def add_assistant_message_with_analysis(
    org_id: str,
    thread_id: str,
    *,
    analysis: dict[str, Any],
    content: Any = "",
    user_id: str | None = None,
    execution: dict[str, Any] | None = None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    **fields: Any,
) -> tuple[Message, Analysis, Execution | None]:
    """An assistant message with an embedded analysis that is also stored in `analyses`.

    Links: message.analysis_id -> analysis, analysis.message_id -> message, and (when given)
    execution.message_id -> message, message.execution_id -> execution.
    """
    thread = await Thread.find_one(
        {"org_id": org_id, "thread_id": str(thread_id), "status": {"$in": LIVE_STATUSES}}
    )
    if thread is None:
        raise NotFound(f"thread {thread_id!r} not found")
    user_id = user_id or thread.user_id
    message = build_message(
        org_id, thread_id, role="assistant", content=content, user_id=user_id, **fields
    )
    stored = Analysis(
        org_id=org_id,
        user_id=user_id,
        thread_id=thread_id,
        message_id=message.message_id,
        **analysis,
    )
    run = None
    if execution is not None:
        run = Execution(
            org_id=org_id,
            user_id=user_id,
            thread_id=thread_id,
            message_id=message.message_id,
            analysis_id=stored.analysis_id,
            **execution,
        )
        stored.execution_id = run.execution_id
        message.execution_id = run.execution_id
        message.execution_status = run.status
    message.analysis_id = stored.analysis_id
    message.analysis = AnalysisSnapshot.model_validate(stored.snapshot())
    check_size(message, max_bytes)
    try:
        await stored.insert()
        if run is not None:
            await run.insert()
    except DuplicateKeyError as exc:
        raise Conflict("analysis or execution id already exists") from exc
    await insert_message(message, max_bytes)
    await Thread.get_pymongo_collection().update_one(
        {"org_id": org_id, "thread_id": str(thread_id)},
        {"$addToSet": {"analysis_ids": stored.analysis_id}},
    )
    return message, stored, run


async def get_message(org_id: str, message_id: str) -> Message:
    message = await Message.find_one({"org_id": org_id, "message_id": str(message_id)})
    if message is None:
        raise NotFound(f"message {message_id!r} not found")
    return message


NOT_DELETED = {"deleted": False}  # every reader's condition: soft-deleted messages are hidden


def visible(org_id: str | None, thread_id: str) -> dict[str, Any]:
    """The query of a thread's messages as every reader shows them."""
    query: dict[str, Any] = {"thread_id": str(thread_id), **NOT_DELETED}
    if org_id is not None:
        query["org_id"] = org_id
    return query


async def list_messages(
    org_id: str,
    thread_id: str,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    from_seq: int = 0,
) -> Page[Message]:
    """A thread's messages in `seq` order from `from_seq`, keyset-paginated by seq."""
    limit = clamp_limit(limit, 50)
    pos = decode_cursor(cursor, {"seq": int})
    query = visible(org_id, thread_id)
    start = max(from_seq, pos["seq"] + 1 if pos else 0)
    if start:
        query["seq"] = {"$gte": start}
    found = await Message.find(query).sort([("seq", 1)]).limit(limit + 1).to_list()
    nxt = None
    if len(found) > limit:
        found = found[:limit]
        nxt = encode_cursor({"seq": found[-1].seq})
    return Page(found, nxt)


def all_messages(org_id: str, thread_id: str):
    """Every visible message of a thread in seq order, as a cursor (exports stream it)."""
    return Message.find(visible(org_id, thread_id)).sort([("seq", 1)])


async def recent_messages(org_id: str, thread_id: str, count: int = 10) -> list[Message]:
    """The last `count` messages of a thread, in seq order."""
    if count <= 0:
        return []  # limit(0) would mean "no limit"
    found = (
        await Message.find(visible(org_id, thread_id))
        .sort([("seq", -1)])
        .limit(max(0, min(count, 200)))
        .to_list()
    )
    return list(reversed(found))


# -- changes to stored messages -------------------------------------------------------------


@dataclass
class Change:
    """One stored message and what it becomes (the named fields of `after`)."""

    before: Message
    after: Message
    names: set[str]
    status: Literal["updated", "unchanged", "conflict"] = "updated"


async def update_messages(
    org_id: str, changes: list[Change], *, effects: Effects | None = None
) -> None:
    """Write each change (only if the message did not change meanwhile), moving the counters of
    its thread and the analytics by the difference."""
    ops = []
    for ch in changes:
        ch.after.updated_at_ms = max(now_ms(), ch.before.updated_at_ms + 1)  # always moves
        names = {*ch.names, "updated_at_ms"}
        if set(Message.SEARCH_FIELDS) & names:
            ch.after.index_search_terms()
            names.add("search_terms")
        ops.append(
            UpdateOne(
                {
                    "org_id": org_id,
                    "message_id": ch.before.message_id,
                    "updated_at_ms": ch.before.updated_at_ms,
                },
                {"$set": ch.after.storage_fields(names)},
            )
        )
    if not ops:
        return
    result = await Message.get_pymongo_collection().bulk_write(ops, ordered=False)
    if result.matched_count < len(ops):  # find which lost the race: they changed meanwhile
        for ch in changes:
            now = await Message.get_pymongo_collection().find_one(
                {"org_id": org_id, "message_id": ch.before.message_id}, {"updated_at_ms": 1}
            )
            if now is None or now["updated_at_ms"] != ch.after.updated_at_ms:
                ch.status = "conflict"
    done = [c for c in changes if c.status == "updated"]
    await _move_counters(org_id, done, effects)
    await events.publish_many(
        org_id, [(c.after.thread_id, "message.updated", live(c.after)) for c in done]
    )


async def _move_counters(org_id: str, changes: list[Change], effects: Effects | None) -> None:
    own = effects is None
    effects = effects or Effects(org_id)
    by_thread: dict[str, list[dict[str, int]]] = {}
    for ch in changes:
        old_live, new_live = not ch.before.deleted, not ch.after.deleted
        old = thread_counters(ch.before) if old_live else {}
        new = thread_counters(ch.after) if new_live else {}
        by_thread.setdefault(ch.before.thread_id, []).append(analytics.difference(old, new))
        old_a = analytics.message_counters(ch.before) if old_live else {}
        new_a = analytics.message_counters(ch.after) if new_live else {}
        effects.count(ch.before.user_id, ch.before.created_at, **analytics.difference(old_a, new_a))
        if old_live != new_live:
            effects.bump_user(ch.before.user_id, message_count=1 if new_live else -1)
    ops = [
        UpdateOne({"org_id": org_id, "thread_id": tid}, {"$inc": incs})
        for tid, parts in by_thread.items()
        if (incs := _summed(parts))
    ]
    if ops:
        await Thread.get_pymongo_collection().bulk_write(ops, ordered=False)
    if own:
        await effects.flush()


FIXED = {"id", "org_id", "message_id", "thread_id", "seq", "deleted", "deleted_at_ms",
         "created_at", "created_at_ms", "updated_at_ms", "search_terms", "ingest_hash"}  # fmt: skip


async def edit_message(org_id: str, message_id: str, **fields: Any) -> Message:
    """Change fields of a stored message (the admin's edit); the counters follow."""
    current = await get_message(org_id, message_id)
    names = {k for k in fields if k in Message.model_fields and k not in FIXED}
    data = {**current.model_dump(by_alias=True), **{k: fields[k] for k in names}}
    if "content" in names and "text" not in names:
        data["text"] = ""  # rendered again from the new content
    updated = _derived(Message.model_validate(data))
    change = Change(current, updated, names | {"text", "has_error", "query_type"})
    await update_messages(org_id, [change])
    if change.status == "conflict":
        raise Conflict(f"message {message_id!r} changed meanwhile; reload and retry")
    return updated


async def soft_delete(org_id: str, message_id: str) -> Message:
    """Hide a message from every reader; its thread's and the analytics' counters drop it."""
    return await _set_deleted(org_id, message_id, True)


async def restore(org_id: str, message_id: str) -> Message:
    """Undo a soft delete: the message and its counts are back."""
    return await _set_deleted(org_id, message_id, False)


async def _set_deleted(org_id: str, message_id: str, deleted: bool) -> Message:
    now = now_ms()
    before = await Message.get_pymongo_collection().find_one_and_update(
        {"org_id": org_id, "message_id": str(message_id), "deleted": not deleted},
        {"$set": {"deleted": deleted, "deleted_at_ms": now * deleted, "updated_at_ms": now}},
        return_document=ReturnDocument.BEFORE,
    )
    if before is None:  # already so (idempotent), or not there
        return await get_message(org_id, message_id)
    old = Message.model_validate(before)
    new = old.model_copy(update={"deleted": deleted, "deleted_at_ms": now * deleted})
    await _move_counters(org_id, [Change(old, new, {"deleted"})], None)
    await events.publish(org_id, new.thread_id, "message.updated", live(new))
    return new


# -- feedback -------------------------------------------------------------------------------


@dataclass
class FeedbackGiven:
    """One message's new feedback and what became of it."""

    message_id: str
    feedback: Feedback
    status: Literal["created", "updated", "unchanged", "not_found", "conflict"] = "created"
    message: Message | None = None
    before: Feedback | None = None


async def give_feedback(
    org_id: str, items: list[FeedbackGiven], *, effects: Effects | None = None
) -> list[FeedbackGiven]:
    """Set (or replace) the feedback of messages; the analytics count the difference."""
    ids = sorted({i.message_id for i in items})
    found = Message.get_pymongo_collection().find({"org_id": org_id, "message_id": {"$in": ids}})
    stored = {d["message_id"]: Message.model_validate(d) async for d in found}
    changes = []
    for item in items:
        current = stored.get(item.message_id)
        if current is None:
            item.status = "not_found"
            continue
        item.before = current.feedback
        old = current.feedback
        if old is not None and (old.is_helpful, old.rating, old.comment) == (
            item.feedback.is_helpful,
            item.feedback.rating,
            item.feedback.comment,
        ):
            item.status, item.message = "unchanged", current
            continue
        item.status = "updated" if old else "created"
        item.message = current.model_copy(update={"feedback": item.feedback})
        changes.append((item, Change(current, item.message, {"feedback"})))
    await update_messages(org_id, [c for _, c in changes], effects=effects)
    for item, change in changes:
        if change.status == "conflict":
            item.status = "conflict"
    return items


async def set_feedback(
    org_id: str,
    message_id: str,
    *,
    is_helpful: bool | None = None,
    rating: int | None = None,
    comment: str | None = None,
) -> Message:
    """Set (or replace) one message's feedback."""
    if is_helpful is None and rating is None and not comment:
        raise Invalid("feedback needs is_helpful, rating or comment")
    fb = Feedback(is_helpful=is_helpful, rating=rating, comment=comment, submitted_at_ms=now_ms())
    (item,) = await give_feedback(org_id, [FeedbackGiven(str(message_id), fb)])
    if item.status == "not_found":
        raise NotFound(f"message {message_id!r} not found")
    if item.status == "conflict":
        raise Conflict(f"message {message_id!r} changed meanwhile; retry")
    return item.message
