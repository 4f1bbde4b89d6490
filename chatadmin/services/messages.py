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
from dataclasses import dataclass
from typing import Any, Literal

import bson
from bson.raw_bson import RawBSONDocument
from pydantic import TypeAdapter
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from chatadmin.clock import from_ms, ms_datetime, now_ms, to_ms
from chatadmin.exceptions import Conflict, Invalid, NotFound, TooLarge
from chatadmin.models import Analysis, Execution, Message, Thread
from chatadmin.models.analysis import AnalysisSnapshot
from chatadmin.models.blocks import coerce_content, render_text
from chatadmin.models.jsonfield import unescape_keys
from chatadmin.models.message import AiMetadata, Feedback, MessageOut
from chatadmin.models.size import document_size
from chatadmin.models.thread import (
    CLAIMS_KEPT,
    LIVE_FILTER,
    LIVE_STATUSES,
    MESSAGE_PAGE_BYTES,
    MESSAGE_PAGE_MAX,
)
from chatadmin.realtime import events
from chatadmin.services import analytics
from chatadmin.services.claims import claim_of, reserved_seqs
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


THREAD_ROLLUPS = ("message_count", "total_tokens", "total_response_ms", "response_count",
                  "error_count")  # fmt: skip


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
            Message.keyed(org_id, ids), {"message_id": 1}
        )
        for doc in await cursor.to_list():
            outcome[doc["message_id"]] = Inserted(None, "exists", "already stored")  # type: ignore[arg-type]
    by_thread: dict[str, list[Message]] = {}
    for m in batch:
        if m.message_id not in outcome:
            by_thread.setdefault(m.thread_id, []).append(m)
    own = effects is None
    effects = effects or Effects(org_id)
    # A reservation moves its thread's rollups and `next_seq`: the journal names the threads,
    # and the users and days the write will count, before the first one.
    wanted = [m for msgs in by_thread.values() for m in msgs]
    await effects.begin({m.user_id for m in wanted}, {m.created_at for m in wanted}, by_thread)
    # What this writer reserved is stored before it waits for anyone: two writers of the same
    # messages on several threads never wait for each other.
    ready, claimed = await _reserve_all(org_id, by_thread, outcome)
    # A message without a user counts for its thread's owner, known now.
    await effects.begin({m.user_id for m in ready + claimed}, ())
    await _store(org_id, ready, outcome)
    if claimed:
        ready += await _after_claimed(org_id, claimed, outcome)
    created = [m for m in ready if outcome[m.message_id].status == "created"]
    for m in created:
        effects.count(m.user_id, m.created_at, **analytics.message_counters(m))
        effects.bump_user(m.user_id, to_ms(m.created_at), message_count=1)
    # Listeners hear of a stored message before the day buckets move: the live tail waits for
    # nothing it does not show.
    await events.publish_many(org_id, [(m.thread_id, "message.created", live(m)) for m in created])
    if own:
        await effects.flush()
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


async def _reserve_all(
    org_id: str, by_thread: dict[str, list[Message]], outcome: dict[str, Inserted]
) -> tuple[list[Message], list[Message]]:
    """Reserve seqs on every thread of a batch: on many threads at once in bulk first, then
    thread by thread for what that left (`_reserve_in_bulk`, `_reserve`); returns the messages
    reserved and those another writer claimed first."""
    reserved: list[Message] = []
    rest = by_thread
    if len(by_thread) > 1:
        reserved, rest = await _reserve_in_bulk(org_id, by_thread, outcome)
    done = await asyncio.gather(*(_reserve(org_id, t, msgs, outcome) for t, msgs in rest.items()))
    claimed = [m for _mine, theirs in done for m in theirs]
    return reserved + [m for mine, _theirs in done for m in mine], claimed


async def _reserve_in_bulk(
    org_id: str, by_thread: dict[str, list[Message]], outcome: dict[str, Inserted]
) -> tuple[list[Message], dict[str, list[Message]]]:
    """Reserve on many threads with one read and one bulk write; returns the messages reserved
    and the threads left to `_reserve` (another writer reserved on them meanwhile, or claimed
    some of their messages).

    Each thread's update is conditional on the `next_seq` just read, so it applies only if no
    other writer reserved since. It is an upsert, so that an update that does not apply fails
    on the thread's `_id` with a duplicate-key error that names it: an unordered bulk write says
    which of its updates failed, but not which of them matched nothing.
    """
    fields = {"thread_id": 1, "status": 1, "next_seq": 1, "user_id": 1, "recent_claims": 1}
    threads = Thread.get_pymongo_collection()
    cursor = threads.find(Thread.keyed(org_id, by_thread), fields, batch_size=len(by_thread))
    found = {d["thread_id"]: d async for d in cursor}
    rest: dict[str, list[Message]] = {}
    order = []
    for tid, msgs in by_thread.items():
        doc = found.get(tid)
        if doc is None or doc.get("status") not in LIVE_STATUSES:
            _not_found(msgs, tid, outcome)
        elif set(doc.get("recent_claims") or ()) & {claim_of(m.message_id) for m in msgs}:
            rest[tid] = msgs
        else:
            order.append((tid, doc))
    ops = [_reservation(org_id, tid, d.get("next_seq", 0), by_thread[tid]) for tid, d in order]
    failed, vanished = await _apply_reservations(threads, ops) if ops else (set(), set())
    reserved = []
    for i, (tid, doc) in enumerate(order):
        msgs = by_thread[tid]
        if i in failed:
            rest[tid] = msgs
        elif i in vanished:
            _not_found(msgs, tid, outcome)
        else:
            for offset, m in enumerate(msgs):
                m.seq = doc.get("next_seq", 0) + offset
                m.user_id = m.user_id or doc.get("user_id")
            reserved += msgs
    return reserved, rest


def _not_found(msgs: list[Message], thread_id: str, outcome: dict[str, Inserted]) -> None:
    for m in msgs:
        outcome[m.message_id] = Inserted(m, "not_found", f"thread {thread_id!r} not found")


def _reservation(org_id: str, thread_id: str, next_seq: int, msgs: list[Message]) -> UpdateOne:
    """The conditional update that reserves `msgs` the seqs from `next_seq` on."""
    claims = [claim_of(m.message_id) for m in msgs]
    last = max(to_ms(m.created_at) for m in msgs)
    return UpdateOne(
        {
            **Thread.key_of(org_id, thread_id),
            "thread_id": thread_id,
            "status": LIVE_FILTER,
            "next_seq": next_seq,
        },
        {
            "$inc": {"next_seq": len(msgs), **_summed([thread_counters(m) for m in msgs])},
            "$max": {"last_message_at_ms": last, "last_activity_ms": last, "updated_at_ms": last},
            "$push": {"recent_claims": {"$each": claims, "$slice": -CLAIMS_KEPT}},
            # Only if the thread vanished since it was read: a placeholder, removed at once.
            "$setOnInsert": {"status": "deleted", "user_id": VANISHED, "title": VANISHED},
        },
        upsert=True,
    )


VANISHED = "vanished"  # the owner and title of the placeholder of a thread gone mid-reservation


async def _apply_reservations(threads, ops: list[UpdateOne]) -> tuple[set[int], set[int]]:
    """Run the reservations; returns the indexes of those that did not apply (the thread
    changed) and of those whose thread had vanished (its placeholder is deleted)."""
    failed: set[int] = set()
    upserted: dict[int, str] = {}
    try:
        result = await threads.bulk_write(ops, ordered=False)
        upserted = dict(result.upserted_ids or {})
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        failed = {e["index"] for e in errors}
        upserted = {u["index"]: u["_id"] for u in exc.details.get("upserted", [])}
    if upserted:
        await threads.delete_many(
            {"_id": {"$in": list(upserted.values())}, "user_id": VANISHED, "status": "deleted"}
        )
    return failed, set(upserted)


async def _reserve(
    org_id: str, thread_id: str, msgs: list[Message], outcome: dict[str, Inserted]
) -> tuple[list[Message], list[Message]]:
    """Claim the messages on their thread and reserve consecutive seqs (one atomic update);
    returns those reserved and those another writer claimed first."""
    threads = Thread.get_pymongo_collection()
    pending, claimed = list(msgs), []
    for _attempt in range(8):
        if not pending:
            break
        claims = [claim_of(m.message_id) for m in pending]
        last = max(to_ms(m.created_at) for m in pending)
        doc = await threads.find_one_and_update(
            {
                **Thread.key_of(org_id, thread_id),
                "status": LIVE_FILTER,
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
            return pending, claimed
        thread = await threads.find_one(
            Thread.key_of(org_id, thread_id), {"status": 1, "recent_claims": 1}
        )
        if thread is None or thread["status"] not in LIVE_STATUSES:
            _not_found(pending + claimed, thread_id, outcome)
            return [], []
        taken = set(thread.get("recent_claims", [])) & set(claims)
        claimed += [m for m in pending if claim_of(m.message_id) in taken]
        pending = [m for m in pending if claim_of(m.message_id) not in taken]
    for m in pending:  # the thread kept changing under us
        outcome[m.message_id] = Inserted(m, "failed", "the thread is busy; retry")
    return [], claimed


async def _after_claimed(
    org_id: str, claimed: list[Message], outcome: dict[str, Inserted]
) -> list[Message]:
    """Wait for the writers that claimed these messages to store them. Those a writer did not
    store (it died) are stored at the seqs it reserved for them (`claims.reserved_seqs`: its
    counters were moved when it reserved them), or, where the thread no longer tells which,
    reserved again. Returns the messages this writer stored in the end."""
    orphans = await _await_claimed(org_id, claimed, outcome)
    if not orphans:
        return []
    filled, lost = await _fill_reserved(org_id, orphans, outcome)
    if not lost:
        return filled
    pulls = [
        UpdateOne(
            Thread.key_of(org_id, tid),
            {"$pull": {"recent_claims": {"$in": [claim_of(m.message_id) for m in msgs]}}},
        )
        for tid, msgs in lost.items()
    ]
    await Thread.get_pymongo_collection().bulk_write(pulls, ordered=False)
    ready, again = await _reserve_all(org_id, lost, outcome)
    await _store(org_id, ready, outcome)
    for m in again:  # claimed anew meanwhile: a retry of it is still running
        outcome[m.message_id] = Inserted(m, "failed", "a concurrent write of it failed; retry")
    return filled + ready


async def _fill_reserved(
    org_id: str, orphans: list[Message], outcome: dict[str, Inserted]
) -> tuple[list[Message], dict[str, list[Message]]]:
    """Store orphans at the seqs their dead writer reserved; returns those stored and, by
    thread, those whose seq the thread no longer tells (claims pulled or slid out)."""
    by_thread: dict[str, list[Message]] = {}
    for m in orphans:
        by_thread.setdefault(m.thread_id, []).append(m)
    fields = {"thread_id": 1, "status": 1, "next_seq": 1, "user_id": 1, "recent_claims": 1}
    cursor = Thread.get_pymongo_collection().find(Thread.keyed(org_id, by_thread), fields)
    found = {d["thread_id"]: d async for d in cursor}
    ready: list[Message] = []
    lost: dict[str, list[Message]] = {}
    for tid, msgs in by_thread.items():
        doc = found.get(tid)
        if doc is None or doc.get("status") not in LIVE_STATUSES:
            _not_found(msgs, tid, outcome)
            continue
        seqs = reserved_seqs(doc, [m.message_id for m in msgs])
        for m in msgs:
            if m.message_id not in seqs:
                lost.setdefault(tid, []).append(m)
                continue
            m.seq, m.user_id = seqs[m.message_id], m.user_id or doc.get("user_id")
            ready.append(m)
    await _store(org_id, ready, outcome, release=False)
    clashed = [m for m in ready if outcome[m.message_id].status == "exists"]
    if clashed:  # stored meanwhile, or its seq holds another message (the claims misled)
        cursor = Message.get_pymongo_collection().find(
            Message.keyed(org_id, [m.message_id for m in clashed]), {"message_id": 1}
        )
        there = {d["message_id"] async for d in cursor}
        for m in clashed:
            if m.message_id not in there:
                lost.setdefault(m.thread_id, []).append(m)
    return [m for m in ready if outcome[m.message_id].status == "created"], lost


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
        found = coll.find(Message.keyed(org_id, ids), {"message_id": 1})
        stored = {d["message_id"] async for d in found}
        if len(stored) == len(ids) or loop.time() >= deadline:
            break
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
    for m in msgs:
        if m.message_id in stored:
            outcome[m.message_id] = Inserted(m, "exists", "stored by a concurrent write")
    return [m for m in msgs if m.message_id not in stored]


async def _store(
    org_id: str, ready: list[Message], outcome: dict[str, Inserted], release: bool = True
) -> None:
    """Insert the reserved messages in one unordered write; give back what failed (unless
    `release` is False: seqs a dead writer reserved, whose counters stay its own)."""
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
        if release:
            await _release(org_id, lost, outcome)


async def _release(org_id: str, lost: list[Message], outcome: dict[str, Inserted]) -> None:
    """Give back what was reserved for messages that were not stored. A message another write
    stored at the very seq reserved for it (a retry that filled it, `_fill_reserved`) gives back
    nothing: its seq is filled and its counters are the reservation's. Of the others, a run at
    the thread's tail goes back whole (its seqs, counters and claims, in one conditional update,
    so the claims stay one per seq). Elsewhere the seqs stay reserved: a message stored at
    another seq gives back its counters; one that failed otherwise keeps them and its claim,
    so that its retry fills its seq."""
    dups = [m for m in lost if outcome[m.message_id].status == "exists"]
    stored: dict[str, int] = {}
    if dups:
        cursor = Message.get_pymongo_collection().find(
            Message.keyed(org_id, [m.message_id for m in dups]), {"message_id": 1, "seq": 1}
        )
        stored = {d["message_id"]: d.get("seq") async for d in cursor}
    lost = [m for m in lost if stored.get(m.message_id) != m.seq]
    by_thread: dict[str, list[Message]] = {}
    for m in lost:
        by_thread.setdefault(m.thread_id, []).append(m)
    elsewhere = set(stored)  # stored at another seq
    threads = Thread.get_pymongo_collection()
    for tid, msgs in by_thread.items():
        key = Thread.key_of(org_id, tid)
        top = max(m.seq for m in msgs)
        if sorted(m.seq for m in msgs) == list(range(top - len(msgs) + 1, top + 1)):
            back = {
                "$inc": {**_summed([thread_counters(m, -1) for m in msgs]), "next_seq": -len(msgs)},
                "$pull": {"recent_claims": {"$in": [claim_of(m.message_id) for m in msgs]}},
            }
            if (await threads.update_one({**key, "next_seq": top + 1}, back)).modified_count:
                continue
        counted = [m for m in msgs if m.message_id in elsewhere]
        if counted:
            await threads.update_one(
                key, {"$inc": _summed([thread_counters(m, -1) for m in counted])}
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


PAGE_ITEMS = TypeAdapter(list[MessageOut])
# What a stored message lacks when it was written before a field existed: the model's default
# (never a made-up id or time: those are always stored).
OUT_DEFAULTS = {
    name: field.get_default(call_default_factory=True)
    for name, field in Message.model_fields.items()
    if name in MessageOut.model_fields
    and not field.is_required()
    and field.default_factory in (None, list, dict)
}


async def list_messages(
    org_id: str,
    thread_id: str,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    from_seq: int = 0,
    max_bytes: int = MESSAGE_PAGE_BYTES,
) -> Page[MessageOut]:
    """A thread's messages in `seq` order from `from_seq`, keyset-paginated by seq, as the API
    shows them: up to `limit` (at most `MESSAGE_PAGE_MAX`), and the page stops once its
    messages' stored size passes `max_bytes` (the cursor continues after the last one)."""
    limit = clamp_limit(limit, 50, MESSAGE_PAGE_MAX)
    pos = decode_cursor(cursor, {"seq": int})
    query = visible(org_id, thread_id)
    start = max(from_seq, pos["seq"] + 1 if pos else 0)
    if start:
        query["seq"] = {"$gte": start}
    docs, more = await _read_page(query, limit, max_bytes)
    items = PAGE_ITEMS.validate_python([_out_fields(d) for d in docs])
    return Page(items, encode_cursor({"seq": items[-1].seq}) if more else None)


async def _read_page(query: dict[str, Any], limit: int, max_bytes: int) -> tuple[list, bool]:
    """The stored documents of one page in seq order, and whether more follow. They arrive
    undecoded, so each one's size is known before it is decoded, and the read stops (with at
    most one server batch, 16 MB, beyond the budget) once the page is full."""
    coll = Message.get_pymongo_collection()
    codec = coll.codec_options
    raw = coll.with_options(codec_options=codec.with_options(document_class=RawBSONDocument))
    cursor = raw.find(query, batch_size=limit + 1).sort("seq", 1).limit(limit + 1)
    kept, size = [], 0
    try:
        async for doc in cursor:
            if len(kept) == limit or size > max_bytes:
                return kept, True
            kept.append(bson.decode(doc.raw, codec))
            size += len(doc.raw)
    finally:
        await cursor.close()
    return kept, False


def _out_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored message as `MessageOut` reads it: the fields it lacks at their defaults, its
    free-form keys restored, its times from their ms fields."""
    out = {**OUT_DEFAULTS, **doc}
    if isinstance(out["content"], str):
        out["content"] = coerce_content(out["content"])
    out["metadata"] = unescape_keys(out["metadata"] or {})
    created_ms = doc.get("created_at_ms") or to_ms(doc["created_at"])
    out["updated_at"] = from_ms(doc.get("updated_at_ms") or created_ms)
    if out.get("feedback"):
        feedback = out["feedback"]
        out["feedback"] = {**feedback, "submitted_at": ms_datetime(feedback.get("submitted_at_ms"))}
    return out


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
    own = effects is None
    effects = effects or Effects(org_id)
    befores = [ch.before for ch in changes]
    await effects.begin(
        {m.user_id for m in befores},
        {m.created_at for m in befores},
        {m.thread_id for m in befores},
    )
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
    if own:
        await effects.flush()


async def _move_counters(org_id: str, changes: list[Change], effects: Effects) -> None:
    """Move the threads' counters by each change's difference (now) and the analytics and
    users' counters (gathered in `effects`)."""
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
        UpdateOne(Thread.key_of(org_id, tid), {"$inc": incs})
        for tid, parts in by_thread.items()
        if (incs := _summed(parts))
    ]
    if ops:
        await Thread.get_pymongo_collection().bulk_write(ops, ordered=False)


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
    current = await get_message(org_id, message_id)
    effects = Effects(org_id)
    await effects.begin([current.user_id], [current.created_at], [current.thread_id])
    now = now_ms()
    before = await Message.get_pymongo_collection().find_one_and_update(
        {"org_id": org_id, "message_id": str(message_id), "deleted": not deleted},
        {"$set": {"deleted": deleted, "deleted_at_ms": now * deleted, "updated_at_ms": now}},
        return_document=ReturnDocument.BEFORE,
    )
    if before is None:  # already so (idempotent)
        await effects.flush()
        return await get_message(org_id, message_id)
    old = Message.model_validate(before)
    new = old.model_copy(update={"deleted": deleted, "deleted_at_ms": now * deleted})
    await _move_counters(org_id, [Change(old, new, {"deleted"})], effects)
    await effects.flush()
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
    found = Message.get_pymongo_collection().find(Message.keyed(org_id, ids))
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
