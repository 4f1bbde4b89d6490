"""The write gate: at most `CHATADMIN_WRITE_CONCURRENCY` heavy writes (ingest batches, message
appends, imports) of one app process talk to MongoDB at a time; the others wait their turn here.

Waiting in the app is cheap and visible; waiting on the database server is neither. Without the
gate, a load heavier than the server can take queues operations on the server until they pass
their reply timeout, which looks exactly like an outage: the app then sends every write to the
spool for a while, and replaying the spool adds to the load (the cascade `docs/benchmarks.md`
measured). With it, the server sees a short queue and answers in time, and a request that
cannot get a turn within `CHATADMIN_MONGO_TIMEOUT_MS` gets 503 `busy` with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request

from chatadmin.exceptions import Busy

RETRY_AFTER_S = 1


def write_turn(request: Request) -> contextlib.AbstractAsyncContextManager[None]:
    """A turn of the app's write gate, for a door's database work (taken after its body was
    read and checked: a request the app refuses anyway never waits for a turn)."""
    return request.app.state.write_gate.turn()


class WriteGate:
    """A bounded number of turns, waited for up to `wait_s` (None: as long as it takes)."""

    def __init__(self, size: int, wait_s: float | None) -> None:
        self.size = size
        self.wait_s = wait_s
        self.turns = asyncio.Semaphore(size)
        self.active = 0
        self.waiting = 0
        self.refused = 0

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold one turn for the body; Busy when none came free in time."""
        self.waiting += 1
        try:
            async with asyncio.timeout(self.wait_s):
                await self.turns.acquire()
        except TimeoutError:
            self.refused += 1
            raise Busy(
                f"the server is busy ({self.size} writes in progress, {self.waiting - 1} "
                "waiting); retry later",
                RETRY_AFTER_S,
            ) from None
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self.turns.release()

    def status(self) -> dict:
        """For `/readyz`: turns in use and waited for, and the refusals since the start."""
        return {
            "size": self.size,
            "active": self.active,
            "waiting": self.waiting,
            "refused": self.refused,
        }
