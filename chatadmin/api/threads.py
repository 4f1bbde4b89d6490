"""`/threads`: the seed 002 contract (list, create, read with messages, append, rename, delete,
context) plus sharing."""

from __future__ import annotations

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chatadmin.api import limits, spooling
from chatadmin.api.auth import actor, record
from chatadmin.api.gate import write_turn
from chatadmin.api.http import has_body, no_content, path_id, read_json, read_query, respond
from chatadmin.api.spec import Endpoint
from chatadmin.clock import utcnow
from chatadmin.models import Message, SharedThread, Thread
from chatadmin.models.base import new_id
from chatadmin.models.message import MessageIn, MessageOut, SpooledMessageOut
from chatadmin.models.schema import ApiDatetime, ApiOut
from chatadmin.models.share import ShareCreated, ShareIn
from chatadmin.models.thread import (
    ContextQuery,
    ThreadGetQuery,
    ThreadIn,
    ThreadListQuery,
    ThreadName,
    ThreadOut,
)
from chatadmin.outage import DATABASE_DOWN
from chatadmin.realtime import caches
from chatadmin.services import history, messages, shares, spooled, threads


class ThreadWithMessages(ApiOut):
    thread: ThreadOut
    messages: list[MessageOut]
    next_cursor: str | None


class RecentAnalysis(ApiOut):
    analysis_id: str
    title: str
    created_at: ApiDatetime


class ThreadContext(ApiOut):
    thread: ThreadOut
    recent_messages: list[MessageOut]
    recent_analyses: list[RecentAnalysis]


THREADS_OUT = TypeAdapter(list[ThreadOut])
MESSAGES_OUT = TypeAdapter(list[MessageOut])


def thread_out(thread) -> dict:
    return ThreadOut.model_validate(thread).model_dump(mode="json")


def message_out(message) -> dict:
    return MessageOut.model_validate(message).model_dump(mode="json")


async def list_threads(request: Request) -> Response:
    key = request.state.api_key
    q = read_query(request, ThreadListQuery)
    page = await threads.list_threads(
        key.org_id, user_id=q.user_id, status=q.status, limit=q.limit, cursor=q.cursor
    )
    items = THREADS_OUT.dump_python(THREADS_OUT.validate_python(page.items), mode="json")
    return respond({"items": items, "next_cursor": page.next_cursor})


async def create_thread(request: Request) -> Response:
    key = request.state.api_key
    body = await read_json(request, ThreadIn)
    fields = body.model_dump(exclude_none=True, exclude={"user_id"})
    thread = await threads.create_thread(key.org_id, body.user_id, **fields)
    out = thread_out(thread)
    await record(request, "thread_created", Thread, thread.thread_id, after=out)
    return respond(out, 201)


async def get_thread(request: Request) -> Response:
    key = request.state.api_key
    thread_id = path_id(request, "thread_id")
    q = read_query(request, ThreadGetQuery)
    thread = await threads.get_thread(key.org_id, thread_id)
    page = await messages.list_messages(
        key.org_id, thread_id, limit=q.messages_limit or 1, cursor=q.cursor
    )
    items = page.items if q.messages_limit else []
    return respond(
        {
            "thread": thread_out(thread),
            "messages": MESSAGES_OUT.dump_python(items, mode="json"),
            "next_cursor": page.next_cursor if q.messages_limit else None,
        }
    )


async def append_message(request: Request) -> Response:
    key = request.state.api_key
    thread_id = path_id(request, "thread_id")
    body = await read_json(request, MessageIn)
    # Its id and time are fixed before the first try: if MongoDB fails after the write went
    # in, the spooled copy is the same message, and its replay finds it there.
    body = body.model_copy(
        update={
            "message_id": body.message_id or new_id(),
            "created_at": body.created_at or utcnow(),
        }
    )
    settings = request.app.state.settings
    fields = body.model_dump(exclude_none=True)
    fields["content"] = body.content  # keep the validated blocks (or the plain string)
    outage = request.app.state.outage
    try:
        if outage.down:
            return spool_message(request, thread_id, body)
        async with write_turn(request):
            owner = body.user_id or await limits.thread_owner(request, key.org_id, thread_id)
            await limits.count_message(request, key.org_id, owner)
            message = await messages.append_message(
                key.org_id, thread_id, max_bytes=settings.chatadmin_max_message_bytes, **fields
            )
    except DATABASE_DOWN as exc:
        outage.failed(exc)
        return spool_message(request, thread_id, body)
    summary = {"thread_id": thread_id, "seq": message.seq, "role": message.role}
    await record(request, "message_created", Message, message.message_id, after=summary)
    return respond(message_out(message), 201)


def spool_message(request: Request, thread_id: str, body: MessageIn) -> Response:
    """MongoDB unreachable: the message goes to the spool with an id of its own (so its
    replay is idempotent) and is appended, with its seq, when MongoDB returns."""
    key = request.state.api_key
    fields = body.model_dump(mode="json", exclude_none=True)
    messages.check_size(
        messages.build_message(key.org_id, thread_id, **fields),
        request.app.state.settings.chatadmin_max_message_bytes,
    )
    spooling.keep(request, spooled.message_record(key.org_id, actor(request), thread_id, fields))
    out = SpooledMessageOut(thread_id=thread_id, message_id=fields["message_id"])
    return respond(out, 202)


async def delete_thread(request: Request) -> Response:
    key = request.state.api_key
    thread_id = path_id(request, "thread_id")
    thread = await threads.soft_delete(key.org_id, thread_id)
    await record(
        request,
        "thread_deleted",
        Thread,
        thread_id,
        before={"status": "active"},
        after={"status": thread.status},
    )
    return no_content()


async def rename_thread(request: Request) -> Response:
    key = request.state.api_key
    thread_id = path_id(request, "thread_id")
    body = await read_json(request, ThreadName)
    before = await threads.get_thread(key.org_id, thread_id)
    thread = await threads.rename(key.org_id, thread_id, body.name)
    await record(
        request,
        "thread_renamed",
        Thread,
        thread_id,
        before={"title": before.title},
        after={"title": thread.title},
    )
    return respond(thread_out(thread))


async def thread_context(request: Request) -> Response:
    key = request.state.api_key
    thread_id = path_id(request, "thread_id")
    q = read_query(request, ContextQuery)
    rt = request.app.state.realtime
    variant = f"m{q.messages}:a{q.analyses}"
    cached = await caches.context_get(rt, key.org_id, thread_id, variant)
    if cached is not None:
        return JSONResponse(cached, headers={"X-Cache": "hit"})
    ctx = await history.session_context(
        key.org_id, thread_id, messages=q.messages, analyses=q.analyses
    )
    body = ThreadContext(
        thread=ThreadOut.model_validate(ctx["thread"]),
        recent_messages=[MessageOut.model_validate(m) for m in ctx["recent_messages"]],
        recent_analyses=[RecentAnalysis(**a) for a in ctx["recent_analyses"]],
    ).model_dump(mode="json")
    await caches.context_put(rt, key.org_id, thread_id, variant, body)
    return JSONResponse(body, headers={"X-Cache": "miss"})


async def share_thread(request: Request) -> Response:
    key = request.state.api_key
    thread_id = path_id(request, "thread_id")
    body = await read_json(request, ShareIn) if await has_body(request) else ShareIn()
    settings = request.app.state.settings
    share = await shares.create_share(
        key.org_id,
        thread_id,
        expires_in_seconds=body.expires_in_seconds,
        created_by=f"api_key:{key.key_id}",
        max_bytes=settings.chatadmin_max_share_bytes,
        max_messages=settings.chatadmin_max_share_messages,
    )
    await record(
        request,
        "thread_shared",
        SharedThread,
        share.share_id,
        after={"thread_id": thread_id, "expires_at_ms": share.expires_at_ms},
    )
    url = f"{settings.chatadmin_public_url.rstrip('/')}/api/v1/share/{share.share_id}"
    created = ShareCreated(share_id=share.share_id, url=url, expires_at=share.expires_at)
    return respond(created, 201)


ENDPOINTS = [
    Endpoint(
        "GET",
        "/threads",
        list_threads,
        "List threads, newest activity first",
        "threads",
        query=ThreadListQuery,
        response=ThreadOut,
        many=True,
        errors=(401, 403, 422),
    ),
    Endpoint(
        "POST",
        "/threads",
        create_thread,
        "Create a thread",
        "threads",
        scope="ingest",
        body=ThreadIn,
        response=ThreadOut,
        status=201,
        errors=(401, 403, 409, 413, 415, 422),
    ),
    Endpoint(
        "GET",
        "/threads/{thread_id}",
        get_thread,
        "A thread and a page of its messages",
        "threads",
        query=ThreadGetQuery,
        response=ThreadWithMessages,
        errors=(401, 404, 422),
    ),
    Endpoint(
        "DELETE",
        "/threads/{thread_id}",
        delete_thread,
        "Soft-delete a thread",
        "threads",
        scope="ingest",
        status=204,
        errors=(401, 403, 404),
    ),
    Endpoint(
        "POST",
        "/threads/{thread_id}/messages",
        append_message,
        "Append a message (its seq is assigned atomically)",
        "threads",
        scope="ingest",
        body=MessageIn,
        response=MessageOut,
        status=201,
        errors=(401, 403, 404, 409, 413, 415, 422),
        spools=True,
        spooled=SpooledMessageOut,
    ),
    Endpoint(
        "POST",
        "/threads/{thread_id}/name",
        rename_thread,
        "Rename a thread",
        "threads",
        scope="ingest",
        body=ThreadName,
        response=ThreadOut,
        errors=(401, 403, 404, 415, 422),
    ),
    Endpoint(
        "GET",
        "/threads/{thread_id}/context",
        thread_context,
        "The thread, its recent messages and recent analyses",
        "threads",
        query=ContextQuery,
        response=ThreadContext,
        errors=(401, 404, 422),
    ),
    Endpoint(
        "POST",
        "/threads/{thread_id}/share",
        share_thread,
        "Share a snapshot publicly",
        "shares",
        scope="share",
        body=ShareIn,
        response=ShareCreated,
        status=201,
        errors=(401, 403, 404, 413, 415, 422),
    ),
]
