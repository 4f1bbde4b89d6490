"""Real-time endpoints: presence, typing, AI processing status, and the live tail of a thread
as server-sent events (`GET /threads/{id}/events`, resumable with `Last-Event-ID`). They
answer 503 when Redis is down; nothing else depends on them."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from chatadmin.api.http import path_id, read_json, read_query, respond
from chatadmin.api.spec import Endpoint
from chatadmin.clock import now_ms, to_ms, utcnow
from chatadmin.models import Connection
from chatadmin.models.base import new_id
from chatadmin.models.realtime import (
    EventsQuery,
    PresenceIn,
    PresenceOut,
    ProcessingIn,
    ProcessingOut,
    TypingIn,
    TypingOut,
)
from chatadmin.realtime import events, fanout, keys, state
from chatadmin.realtime.guard import RealtimeDown
from chatadmin.services import threads


async def put_presence(request: Request) -> Response:
    key = request.state.api_key
    body = await read_json(request, PresenceIn)
    rt = request.app.state.realtime
    found = await state.set_presence(
        rt, key.org_id, path_id(request, "user_id"), body.status, body.session_id
    )
    return respond(PresenceOut.model_validate(found))


async def get_presence(request: Request) -> Response:
    key = request.state.api_key
    rt = request.app.state.realtime
    found = await state.get_presence(rt, key.org_id, path_id(request, "user_id"))
    return respond(PresenceOut.model_validate(found))


async def post_typing(request: Request) -> Response:
    key = request.state.api_key
    thread = await threads.get_thread(key.org_id, path_id(request, "thread_id"))
    body = await read_json(request, TypingIn)
    rt = request.app.state.realtime
    await state.set_typing(rt, key.org_id, thread.thread_id, body.user_id)
    typing = await state.who_is_typing(rt, key.org_id, thread.thread_id)
    return respond(TypingOut(thread_id=thread.thread_id, typing=typing))


async def get_typing(request: Request) -> Response:
    key = request.state.api_key
    thread = await threads.get_thread(key.org_id, path_id(request, "thread_id"))
    typing = await state.who_is_typing(request.app.state.realtime, key.org_id, thread.thread_id)
    return respond(TypingOut(thread_id=thread.thread_id, typing=typing))


async def put_processing(request: Request) -> Response:
    key = request.state.api_key
    thread = await threads.get_thread(key.org_id, path_id(request, "thread_id"))
    body = await read_json(request, ProcessingIn)
    found = await state.move_processing(
        request.app.state.realtime,
        key.org_id,
        thread.thread_id,
        path_id(request, "message_id"),
        body.status,
        body.error or "",
    )
    return respond(ProcessingOut.model_validate(found))


async def get_processing(request: Request) -> Response:
    key = request.state.api_key
    thread = await threads.get_thread(key.org_id, path_id(request, "thread_id"))
    found = await state.get_processing(
        request.app.state.realtime, key.org_id, thread.thread_id, path_id(request, "message_id")
    )
    return respond(ProcessingOut.model_validate(found))


async def thread_events(request: Request) -> Response:
    """The thread's live tail; what a reconnecting client missed first, then new events."""
    key = request.state.api_key
    org = key.org_id
    thread = await threads.get_thread(org, path_id(request, "thread_id"))
    q = read_query(request, EventsQuery)
    rt = request.app.state.realtime
    heartbeat_ms = int(request.app.state.settings.chatadmin_sse_heartbeat_s * 1000)
    resume = request.headers.get("last-event-id") or q.last_event_id
    missed, after = await events.open_tail(rt, org, thread.thread_id, resume)
    connection = await _connected(request, org, thread.thread_id, q.user_id)

    async def stream():
        try:
            yield f": connected {connection.connection_id}\n\n"
            async for chunk in fanout.tail(
                rt, org, thread.thread_id, missed, after, heartbeat_ms, request.is_disconnected
            ):
                yield chunk
        finally:
            # The stream ends by cancellation when the client leaves: shield the bookkeeping.
            with anyio.CancelScope(shield=True):
                await _disconnected(request, org, thread.thread_id, connection, q.user_id)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


async def _connected(request: Request, org: str, thread_id: str, user_id: str | None):
    """Record a listener: its connection document, and the participants and room sets."""
    now = utcnow()
    expires = now + timedelta(seconds=request.app.state.settings.chatadmin_connection_ttl_seconds)
    connection_id = new_id()
    connection = Connection(
        org_id=org,
        connection_id=connection_id,
        # The process holding the socket: with several workers, which one serves this listener.
        socket_id=f"{socket.gethostname()}:{os.getpid()}:{connection_id[:8]}",
        user_id=user_id or f"key:{request.state.api_key.key_id}",
        status="active",
        active_thread_ids=[thread_id],
        ip_address=request.client.host if request.client else None,
        user_agent=(request.headers.get("user-agent") or "")[:1000] or None,
        connected_at=now,
        last_activity_ms=to_ms(now),
        expires_at=expires,
        expires_at_ms=to_ms(expires),
    )
    await connection.insert()
    rt = request.app.state.realtime

    async def join(client):
        if user_id:
            await client.sadd(rt.key(keys.participants(org, thread_id)), user_id)
        await client.sadd(rt.key(keys.room(org, thread_id)), connection.connection_id)

    await rt.run(join)
    return connection


async def _disconnected(request, org, thread_id, connection, user_id) -> None:
    rt = request.app.state.realtime

    async def leave(client):  # Redis drops a set with its last member: no empty sets remain
        if user_id:
            await client.srem(rt.key(keys.participants(org, thread_id)), user_id)
        await client.srem(rt.key(keys.room(org, thread_id)), connection.connection_id)

    try:
        await rt.run(leave)
    except RealtimeDown:
        pass  # the sets are real-time state only; they go with Redis
    ended = now_ms()
    await Connection.get_pymongo_collection().update_one(
        {"_id": connection.id},
        {
            "$set": {
                "status": "disconnected",
                "disconnected_at_ms": ended,
                "last_activity_ms": ended,
                "total_duration_s": round((ended - connection.last_activity_ms) / 1000),
                "updated_at_ms": ended,
            }
        },
    )


REALTIME_ERRORS = (503,)
ENDPOINTS = [
    Endpoint("PUT", "/presence/{user_id}", put_presence, "Set a user's presence (5 minutes)",
             "realtime", scope="ingest", body=PresenceIn, response=PresenceOut,
             errors=REALTIME_ERRORS),
    Endpoint("GET", "/presence/{user_id}", get_presence, "A user's presence", "realtime",
             response=PresenceOut, errors=REALTIME_ERRORS),
    Endpoint("POST", "/threads/{thread_id}/typing", post_typing,
             "Say a user is typing (5 seconds)", "realtime", scope="ingest", body=TypingIn,
             response=TypingOut, errors=REALTIME_ERRORS),
    Endpoint("GET", "/threads/{thread_id}/typing", get_typing, "Who is typing", "realtime",
             response=TypingOut, errors=REALTIME_ERRORS),
    Endpoint("PUT", "/threads/{thread_id}/messages/{message_id}/processing", put_processing,
             "Move a message's AI processing status", "realtime", scope="ingest",
             body=ProcessingIn, response=ProcessingOut, errors=(409, *REALTIME_ERRORS)),
    Endpoint("GET", "/threads/{thread_id}/messages/{message_id}/processing", get_processing,
             "A message's AI processing status", "realtime", response=ProcessingOut,
             errors=REALTIME_ERRORS),
    Endpoint("GET", "/threads/{thread_id}/events", thread_events,
             "The thread's live tail (server-sent events; resumable with Last-Event-ID)",
             "realtime", query=EventsQuery, errors=REALTIME_ERRORS),
]  # fmt: skip
