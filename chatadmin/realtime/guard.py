"""`Realtime`: every Redis call of the product goes through here, so that Redis being down or
slow never slows anything else down.

Client timeouts are short (`CHATADMIN_REDIS_TIMEOUT_MS`, 100 ms by default); after a failure
the guard stops trying for a few seconds and answers `RealtimeDown` at once, then tries again
by itself (no restart). Warnings are logged at most once a minute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import RedisError

from chatadmin.exceptions import Unavailable
from chatadmin.realtime.store import InProcessStore

log = logging.getLogger("chatadmin.realtime")
T = TypeVar("T")
RETRY_AFTER_S = 3.0
WARN_EVERY_S = 60.0


class RealtimeDown(Unavailable):
    """Redis cannot be reached (or could not a moment ago)."""


class Realtime:
    """The Redis client (or its in-process stand-in), the key prefix and a circuit breaker."""

    def __init__(self, store: Any, prefix: str = "chat:", blocking: Any = None) -> None:
        self.store = store
        self.blocking = blocking or store  # a client without the short timeout, for XREAD BLOCK
        self.prefix = prefix
        self._down_until = 0.0
        self._warned_at = -WARN_EVERY_S

    @property
    def in_process(self) -> bool:
        return isinstance(self.store, InProcessStore)

    def key(self, name: str) -> str:
        return self.prefix + name

    async def run(self, call: Callable[[Any], Awaitable[T]]) -> T:
        """Run `call(client)`; RealtimeDown when Redis fails now or failed a moment ago."""
        return await self._guarded(call, self.store, trips=True)

    async def run_blocking(self, call: Callable[[Any], Awaitable[T]], block_ms: int) -> T:
        """Run a blocking read (`call(client)`) on the client meant for it. Its failure ends
        that listener only: it does not stop the others (`run` finds out whether Redis is
        down)."""
        return await self._guarded(call, self.blocking, trips=False)

    async def _guarded(self, call, client, *, trips: bool):
        if time.monotonic() < self._down_until:
            raise RealtimeDown("real-time state is unavailable (Redis is not reachable)")
        try:
            return await call(client)
        except (RedisError, OSError, TimeoutError) as exc:
            if trips:
                self._down_until = time.monotonic() + RETRY_AFTER_S
            self.warn(f"Redis is not reachable ({type(exc).__name__}: {exc})")
            raise RealtimeDown("real-time state is unavailable (Redis is not reachable)") from exc

    def warn(self, message: str) -> None:
        """Log a warning, at most once a minute."""
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning(message)
