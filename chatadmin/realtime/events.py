"""The live tail: one Redis Stream per conversation (`queue:{org:thread}`, seed 004's message
queue) carrying `message.created`, `message.updated`, `typing` and `processing` events.

A stream rather than a list or pub/sub: its entry ids are ordered and usable as SSE event ids,
so a client that reconnects with `Last-Event-ID` gets exactly what it missed, in order, once;
entries older than an hour are trimmed (`MINID`) and the length is capped (`MAXLEN ~`), so the
stream is the seed's one-hour queue. Every write path publishes through the service layer
(REST, /ingest, admin), after its write to MongoDB; a publish that fails (Redis down) is
logged and never fails the write.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import Any

from chatadmin.realtime import caches, keys
from chatadmin.realtime.guard import Realtime, RealtimeDown

RETENTION_MS = 3600 * 1000
MAX_EVENTS = 10_000  # per conversation
EVENT_TYPES = ("message.created", "message.updated", "typing", "processing")


@dataclass
class Event:
    """One event of a conversation's stream."""

    id: str
    type: str
    data: dict[str, Any]

    def sse(self) -> str:
        """The event as SSE text (made once: a hundred listeners share it)."""
        return self._sse

    @functools.cached_property
    def _sse(self) -> str:
        body = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
        return f"id: {self.id}\nevent: {self.type}\ndata: {body}\n\n"


_hub: Realtime | None = None


def install(realtime: Realtime | None) -> Realtime | None:
    """Make `realtime` the hub services publish to (the app does at start); returns the old."""
    global _hub
    previous, _hub = _hub, realtime
    return previous


async def publish(org_id: str, thread_id: str, kind: str, data: dict[str, Any]) -> None:
    await publish_many(org_id, [(thread_id, kind, data)])


async def publish_many(org_id: str, items: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Append events to their conversations' streams (one round trip); never raises."""
    hub = _hub
    if hub is None or not items:
        return
    minid = f"{int(time.time() * 1000) - RETENTION_MS}-0"

    touched = {thread_id for thread_id, _, _ in items}

    async def write(client):
        if hub.in_process:
            for thread_id, kind, data in items:
                await client.xadd(
                    hub.key(keys.queue(org_id, thread_id)), _fields(kind, data), minid=minid
                )
            for thread_id in touched:
                await client.delete(hub.key(keys.context(org_id, thread_id)))
            return
        # One round trip: the events, their trimming, and the drop of the threads' cached
        # contexts (a write to a thread makes its context stale).
        pipe = client.pipeline(transaction=False)
        for thread_id, kind, data in items:
            key = hub.key(keys.queue(org_id, thread_id))
            pipe.xadd(key, _fields(kind, data), maxlen=MAX_EVENTS, approximate=True)
            pipe.xtrim(key, minid=minid, approximate=True)
            pipe.pexpire(key, RETENTION_MS)
        for thread_id in touched:
            pipe.delete(hub.key(keys.context(org_id, thread_id)))
        await pipe.execute()

    try:
        await hub.run(write)
    except RealtimeDown:
        hub.warn("live-tail events are not published: Redis is not reachable")


async def touched(org_id: str, thread_ids: set[str]) -> None:
    """A write changed these threads without an event (an edit, a note, an analysis): drop
    what is cached of them."""
    if _hub is not None and thread_ids:
        await caches.context_drop(_hub, org_id, thread_ids)


def _fields(kind: str, data: dict[str, Any]) -> dict[str, str]:
    return {"type": kind, "data": json.dumps(data, separators=(",", ":"), default=str)}


def _event(entry_id: Any, fields: dict) -> Event:
    raw = {k.decode() if isinstance(k, bytes) else k: v for k, v in fields.items()}
    data = raw.get("data", b"{}")
    kind = raw.get("type", b"")
    return Event(
        entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id),
        kind.decode() if isinstance(kind, bytes) else str(kind),
        json.loads(data),
    )


def id_key(entry_id: str) -> tuple[int, int] | None:
    """A stream id as a comparable pair, or None when it is not one."""
    ms, sep, seq = entry_id.partition("-")
    if not (ms.isdigit() and (not sep or seq.isdigit())):
        return None
    return int(ms), int(seq or 0)


async def replay(realtime: Realtime, org_id: str, thread_id: str, after: str) -> list[Event] | None:
    """The events after `after`, in order; None when some of them are gone (older than an hour,
    trimmed by length, or dropped by the in-process stand-in's bound): the client must then
    reload."""
    pos = id_key(after)
    if pos is None or pos[0] < time.time() * 1000 - RETENTION_MS:
        return None
    if realtime.in_process and pos < id_key(realtime.store.evicted_through):
        return None  # the stand-in dropped entries after it for its memory bound
    key = realtime.key(keys.queue(org_id, thread_id))
    first = await realtime.run(lambda c: c.xrange(key, "-", "+", count=1))
    if first and id_key(_event(*first[0]).id) > pos:
        return None  # the client's last event was trimmed, and maybe others after it
    entries = await realtime.run(lambda c: c.xrange(key, f"({after}", "+"))
    return [_event(i, f) for i, f in entries]


async def last_id(realtime: Realtime, org_id: str, thread_id: str) -> str:
    """The id of the newest event of the conversation, or "0-0"."""
    key = realtime.key(keys.queue(org_id, thread_id))
    if realtime.in_process:
        entries = await realtime.run(lambda c: c.xrange(key))
        return entries[-1][0].decode() if entries else "0-0"
    newest = await realtime.run(lambda c: c.xrevrange(key, "+", "-", count=1))
    return newest[0][0].decode() if newest else "0-0"


async def wait(realtime: Realtime, org_id: str, thread_id: str, after: str, block_ms: int):
    """The events after `after`, waiting up to `block_ms` for the first (an empty list then)."""
    key = realtime.key(keys.queue(org_id, thread_id))
    found = await realtime.run_blocking(
        lambda c: c.xread({key: after}, count=500, block=block_ms), block_ms
    )
    return [_event(i, f) for _stream, entries in found or [] for i, f in entries]


RESET = 'event: reset\ndata: {"reason": "the events after Last-Event-ID are gone; reload"}\n\n'
DOWN = 'event: unavailable\ndata: {"reason": "Redis is not reachable"}\n\n'


async def open_tail(realtime: Realtime, org_id: str, thread_id: str, resume: str | None):
    """Where a listener starts: (the events it missed or None for a reset, the id to read
    after). Raises RealtimeDown before any byte is sent, so the caller can answer 503."""
    missed = await replay(realtime, org_id, thread_id, resume) if resume else []
    after = missed[-1].id if missed else await last_id(realtime, org_id, thread_id)
    return missed, after
