"""Messages: append with an atomic per-thread `seq`, keeping the thread's rollups in step.

The seq is reserved with one `find_one_and_update` that `$inc`s the thread's `next_seq` together
with its message count and token totals, so concurrent appends get 0, 1, 2, ... with no gap and no
duplicate, without a transaction. The message is then inserted with that seq.
"""

from __future__ import annotations

from typing import Any

import bson
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from chatadmin.clock import now_ms, stamp, to_ms
from chatadmin.exceptions import Conflict, Invalid, NotFound, TooLarge
from chatadmin.models import Analysis, Execution, Message, Thread, User
from chatadmin.models.analysis import AnalysisSnapshot
from chatadmin.models.blocks import render_text
from chatadmin.models.jsonfield import escape_keys
from chatadmin.models.message import AiMetadata, Feedback
from chatadmin.services import analytics
from chatadmin.services.pagination import Page, clamp_limit, decode_cursor, encode_cursor

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
LIVE = ["active", "archived"]


def document_size(doc: Any) -> int:
    """BSON size of a model or dict, as the server would store it."""
    if hasattr(doc, "storage_fields"):
        data = doc.storage_fields()
    else:
        data = escape_keys(doc.model_dump() if hasattr(doc, "model_dump") else doc)
    return len(bson.encode(data))


def build_message(org_id: str, thread_id: str, **fields: Any) -> Message:
    """Validate a message before anything is written (seq assigned later)."""
    message = Message(org_id=org_id, thread_id=thread_id, seq=0, **fields)
    if not message.text:
        message.text = render_text(message.content)
    if message.question_context and not message.query_type:
        message.query_type = message.question_context.query_type
    message.has_error = message.status == "error" or message.error is not None
    return message


def _rollup_incs(message: Message) -> dict[str, int]:
    meta = message.ai_metadata or AiMetadata()
    incs = {"message_count": 1, "next_seq": 1, "total_tokens": meta.tokens()}
    if meta.response_ms is not None:
        incs["total_response_ms"] = meta.response_ms
        incs["response_count"] = 1
    if message.has_error:
        incs["error_count"] = 1
    return incs


def analytics_counters(message: Message) -> dict[str, int]:
    """What one new message adds to its day's analytics counters."""
    meta = message.ai_metadata or AiMetadata()
    return {
        "messages": 1,
        "user_messages": int(message.role == "user"),
        "assistant_messages": int(message.role == "assistant"),
        "tokens_input": meta.input_tokens,
        "tokens_output": meta.output_tokens,
        "tokens_total": meta.tokens(),
        "response_ms_sum": meta.response_ms or 0,
        "response_count": int(meta.response_ms is not None),
        "errors": int(message.has_error),
    }


async def insert_message(message: Message, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Message:
    """Reserve the next seq of the message's thread and store the message with it."""
    size = document_size(message)
    if size > max_bytes:
        raise TooLarge(f"message is {size} bytes; the limit is {max_bytes} bytes")
    existing = await Message.find_one({"org_id": message.org_id, "message_id": message.message_id})
    if existing is not None:
        raise Conflict(f"message {message.message_id!r} already exists")
    now = message.created_at
    ms = to_ms(now)
    incs = _rollup_incs(message)
    threads = Thread.get_pymongo_collection()
    thread = await threads.find_one_and_update(
        {"org_id": message.org_id, "thread_id": message.thread_id, "status": {"$in": LIVE}},
        {
            "$inc": incs,
            "$max": {"last_message_at_ms": ms, "last_activity_ms": ms, "updated_at_ms": ms},
        },
        projection={"next_seq": 1, "user_id": 1},
        return_document=ReturnDocument.AFTER,
    )
    if thread is None:
        raise NotFound(f"thread {message.thread_id!r} not found")
    message.seq = thread["next_seq"] - 1
    if message.user_id is None:
        message.user_id = thread.get("user_id")
    try:
        await message.insert()
    except DuplicateKeyError as exc:
        # Lost a race on the same message_id: give the counters back (the seq stays unused).
        undo = {k: -v for k, v in incs.items() if k != "next_seq"}
        await threads.update_one(
            {"org_id": message.org_id, "thread_id": message.thread_id}, {"$inc": undo}
        )
        raise Conflict(f"message {message.message_id!r} already exists") from exc
    await analytics.record(
        message.org_id, message.user_id, message.created_at, **analytics_counters(message)
    )
    if message.user_id:
        await User.get_pymongo_collection().update_one(
            {"org_id": message.org_id, "user_id": message.user_id},
            {
                "$inc": {"message_count": 1},
                "$max": {"last_active_at_ms": ms},
            },
        )
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
        {"org_id": org_id, "thread_id": str(thread_id), "status": {"$in": LIVE}}
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
    size = document_size(message)
    if size > max_bytes:
        raise TooLarge(f"message is {size} bytes; the limit is {max_bytes} bytes")
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


async def list_messages(
    org_id: str, thread_id: str, *, limit: int | None = None, cursor: str | None = None
) -> Page[Message]:
    """A thread's messages in `seq` order, keyset-paginated by seq."""
    limit = clamp_limit(limit, 50)
    pos = decode_cursor(cursor, {"seq": int})
    query: dict[str, Any] = {"org_id": org_id, "thread_id": str(thread_id), "deleted": False}
    if pos:
        query["seq"] = {"$gt": pos["seq"]}
    found = await Message.find(query).sort([("seq", 1)]).limit(limit + 1).to_list()
    nxt = None
    if len(found) > limit:
        found = found[:limit]
        nxt = encode_cursor({"seq": found[-1].seq})
    return Page(found, nxt)


async def recent_messages(org_id: str, thread_id: str, count: int = 10) -> list[Message]:
    """The last `count` messages of a thread, in seq order."""
    if count <= 0:
        return []  # limit(0) would mean "no limit"
    found = (
        await Message.find({"org_id": org_id, "thread_id": str(thread_id), "deleted": False})
        .sort([("seq", -1)])
        .limit(max(0, min(count, 200)))
        .to_list()
    )
    return list(reversed(found))


async def set_feedback(
    org_id: str,
    message_id: str,
    *,
    is_helpful: bool | None = None,
    rating: int | None = None,
    comment: str | None = None,
) -> Message:
    """Set (or replace) a message's feedback; analytics count the difference."""
    if is_helpful is None and rating is None and not comment:
        raise Invalid("feedback needs is_helpful, rating or comment")
    feedback = Feedback(
        is_helpful=is_helpful, rating=rating, comment=comment, submitted_at_ms=now_ms()
    )
    before = await Message.get_pymongo_collection().find_one_and_update(
        {"org_id": org_id, "message_id": str(message_id)},
        {"$set": {"feedback": feedback.model_dump(), **stamp()}},
        return_document=ReturnDocument.BEFORE,
    )
    if before is None:
        raise NotFound(f"message {message_id!r} not found")
    old = Feedback.model_validate(before["feedback"]) if before.get("feedback") else None

    message = Message.model_validate(before)
    message.feedback = feedback
    await analytics.record(
        org_id, message.user_id, message.created_at, **feedback_delta(old, feedback)
    )
    return message


FEEDBACK_COUNTERS = (
    "feedback_count",
    "helpful_count",
    "unhelpful_count",
    "rating_sum",
    "rating_count",
    "comment_count",
)


def feedback_counts(fb: Feedback | None) -> dict[str, int]:
    """What one message's feedback adds to the analytics counters."""
    if fb is None:
        return dict.fromkeys(FEEDBACK_COUNTERS, 0)
    return {
        "feedback_count": 1,
        "helpful_count": int(fb.is_helpful is True),
        "unhelpful_count": int(fb.is_helpful is False),
        "rating_sum": fb.rating or 0,
        "rating_count": int(fb.rating is not None),
        "comment_count": int(bool(fb.comment)),
    }


def feedback_delta(old: Feedback | None, new: Feedback) -> dict[str, int]:
    """The change of the analytics counters when `old` feedback becomes `new`."""
    before, after = feedback_counts(old), feedback_counts(new)
    return {k: after[k] - before[k] for k in FEEDBACK_COUNTERS}
