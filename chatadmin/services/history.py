"""Conversation context (seed 000's get_session_with_context) and question history."""

from __future__ import annotations

from typing import Any

from chatadmin.exceptions import Invalid
from chatadmin.models import Analysis, Message, Thread
from chatadmin.models.message import QueryType
from chatadmin.services.messages import NOT_DELETED, recent_messages
from chatadmin.services.pagination import Page, clamp_limit, decode_cursor, encode_cursor
from chatadmin.services.threads import get_thread

QUERY_TYPES = QueryType.__args__  # type: ignore[attr-defined]


async def session_context(
    org_id: str, thread_id: str, *, messages: int = 10, analyses: int = 5
) -> dict[str, Any]:
    """The thread, its last messages in order, and its most recent analyses."""
    thread: Thread = await get_thread(org_id, thread_id)
    recent = await recent_messages(org_id, thread_id, messages)
    found = (
        []
        if analyses <= 0
        else (
            await Analysis.find({"org_id": org_id, "thread_id": str(thread_id)})
            .sort([("created_at_ms", -1), ("analysis_id", -1)])
            .limit(max(0, min(analyses, 50)))
            .to_list()
        )
    )
    return {
        "thread": thread,
        "recent_messages": recent,
        "recent_analyses": [
            {"analysis_id": a.analysis_id, "title": a.title, "created_at": a.created_at}
            for a in found
        ],
    }


async def question_history(
    org_id: str,
    *,
    user_id: str | None = None,
    thread_id: str | None = None,
    query_type: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[Message]:
    """A user's (or a thread's) questions, newest first, optionally of one query type."""
    if user_id is None and thread_id is None:
        raise Invalid("question history needs a user_id or a thread_id")
    if query_type is not None and query_type not in QUERY_TYPES:
        raise Invalid(f"query_type must be one of {', '.join(QUERY_TYPES)}")
    limit = clamp_limit(limit)
    query: dict[str, Any] = {"org_id": org_id, "role": "user", **NOT_DELETED}
    if user_id is not None:
        query["user_id"] = str(user_id)
    if thread_id is not None:
        query["thread_id"] = str(thread_id)
    if query_type is not None:
        query["query_type"] = query_type
    pos = decode_cursor(cursor, {"ms": int, "id": str})
    if pos:
        query["$or"] = [
            {"created_at_ms": {"$lt": pos["ms"]}},
            {"created_at_ms": pos["ms"], "message_id": {"$lt": pos["id"]}},
        ]
    found = (
        await Message.find(query)
        .sort([("created_at_ms", -1), ("message_id", -1)])
        .limit(limit + 1)
        .to_list()
    )
    nxt = None
    if len(found) > limit:
        found = found[:limit]
        nxt = encode_cursor({"ms": found[-1].created_at_ms, "id": found[-1].message_id})
    return Page(found, nxt)
