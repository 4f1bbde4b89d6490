"""One reader per conversation per process: however many listeners a conversation has in this
process, one blocking `XREAD` follows its stream and hands each event to every listener's
queue, so Redis serves one read per event and process instead of one per listener.

A listener that joins after the reader has moved on first gets what it is missing from the
stream itself (`XRANGE`), up to the point where its queue started to fill: no event is lost
and none comes twice.
"""

from __future__ import annotations

import asyncio

from chatadmin.realtime import events, keys
from chatadmin.realtime.guard import Realtime, RealtimeDown

QUEUE_SIZE = 10_000  # a listener this far behind is cut off (it reconnects and resumes)
CUT_OFF = object()
READ_TRIES = 3  # reads in a row that may fail before the listeners are told Redis is down


class Reader:
    """Follows one conversation's stream while it has listeners."""

    def __init__(self, hub: Fanout, key: tuple[str, str], after: str, block_ms: int) -> None:
        self.hub, self.key, self.pos, self.block_ms = hub, key, after, block_ms
        self.queues: set[asyncio.Queue] = set()
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        org_id, thread_id = self.key
        failures = 0
        while True:
            if not self.queues:  # no await between this check and leaving: joiners see us or not
                self.hub.readers.pop(self.key, None)
                return
            try:
                found = await events.wait(
                    self.hub.realtime, org_id, thread_id, self.pos, self.block_ms
                )
            except RealtimeDown:
                failures += 1
                if failures < READ_TRIES:  # a slow moment, not an outage: read again
                    await asyncio.sleep(0.1 * failures)
                    continue
                self.hub.readers.pop(self.key, None)
                for q in self.queues:
                    _offer(q, None)
                return
            failures = 0
            for event in found:  # no await in here: a joiner is added between two events
                self.pos = event.id
                for q in list(self.queues):
                    _offer(q, event)


def _offer(q: asyncio.Queue, item) -> None:
    try:
        q.put_nowait(item)
    except asyncio.QueueFull:
        q._queue.clear()
        q.put_nowait(CUT_OFF)


class Fanout:
    """The readers of this process, by conversation."""

    def __init__(self, realtime: Realtime) -> None:
        self.realtime = realtime
        self.readers: dict[tuple[str, str], Reader] = {}

    async def subscribe(
        self, org_id: str, thread_id: str, after: str, block_ms: int
    ) -> tuple[asyncio.Queue, list[events.Event]]:
        """A queue of the events after `after`, and those of them the reader passed already."""
        key = (org_id, thread_id)
        reader = self.readers.get(key)
        q: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        if reader is None:
            reader = Reader(self, key, after, block_ms)
            self.readers[key] = reader
            reader.queues.add(q)
            reader.task = asyncio.create_task(reader.run())
            return q, []
        reader.queues.add(q)
        passed = reader.pos  # from here on the reader fills `q`
        if events.id_key(after) >= events.id_key(passed):
            return q, []
        stream = self.realtime.key(keys.queue(org_id, thread_id))
        entries = await self.realtime.run(lambda c: c.xrange(stream, f"({after}", passed))
        return q, [events._event(i, f) for i, f in entries]

    def unsubscribe(self, org_id: str, thread_id: str, q: asyncio.Queue) -> None:
        reader = self.readers.get((org_id, thread_id))
        if reader is not None:
            reader.queues.discard(q)


def of(realtime: Realtime) -> Fanout:
    """The fan-out of this process's real-time hub."""
    if getattr(realtime, "fanout", None) is None:
        realtime.fanout = Fanout(realtime)
    return realtime.fanout


async def tail(
    realtime: Realtime,
    org_id: str,
    thread_id: str,
    missed: list[events.Event] | None,
    after: str,
    heartbeat_ms: int,
    is_disconnected,
    present=None,
):
    """The SSE text of a live tail: what was missed (or a reset), then new events as they
    come, a heartbeat comment when nothing came, until the client leaves or Redis fails.
    `present(data)` shapes each event's data for this listener (masking); without it every
    listener sends the same text, made once per event."""

    def shown(event: events.Event) -> str:
        if present is None:
            return event.sse()
        return events.Event(event.id, event.type, present(event.data)).sse()

    yield "retry: 2000\n\n"
    if missed is None:
        yield events.RESET
    for event in missed or []:
        yield shown(event)
    hub = of(realtime)
    try:
        q, passed = await hub.subscribe(org_id, thread_id, after, heartbeat_ms)
    except RealtimeDown:
        yield events.DOWN
        return
    try:
        for event in passed:
            yield shown(event)
        while not await is_disconnected():
            try:
                item = await asyncio.wait_for(q.get(), heartbeat_ms / 1000)
            except TimeoutError:
                yield ": heartbeat\n\n"
                continue
            if item is None:
                yield events.DOWN
                return
            if item is CUT_OFF:
                return  # too far behind: the client reconnects and resumes from its last id
            yield shown(item)
    finally:
        hub.unsubscribe(org_id, thread_id, q)
