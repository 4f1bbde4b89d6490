"""Failed-login throttling: after 5 failures in 15 minutes for a username or an IP address,
further tries are refused for 15 minutes.

Counters live in Redis so every process agrees; when Redis is unreachable the throttle keeps
working per process (an in-process store) and logs a warning, so it never fails open.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError

from chatadmin.realtime.store import InProcessStore

log = logging.getLogger("chatadmin.admin.throttle")

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60
LOCK_SECONDS = 15 * 60


class LoginThrottle:
    """Counts failures per username and per IP; locks both out past the limit."""

    def __init__(self, store, prefix: str = "chat:") -> None:
        self.store = store
        self.fallback = InProcessStore()
        self.prefix = f"{prefix}login:"

    def _keys(self, username: str, ip: str | None) -> list[str]:
        keys = [f"user:{username.strip().lower()[:150]}"]
        if ip:
            keys.append(f"ip:{ip}")
        return keys

    async def _call(self, method: str, *args, **kwargs):
        try:
            return await getattr(self.store, method)(*args, **kwargs)
        except (RedisError, OSError) as exc:
            log.warning("login throttle: Redis unavailable (%s); counting in this process", exc)
            return await getattr(self.fallback, method)(*args, **kwargs)

    async def locked_for(self, username: str, ip: str | None) -> int:
        """Seconds until a try is allowed again (0: allowed now)."""
        longest = 0
        for key in self._keys(username, ip):
            ttl = await self._call("ttl", f"{self.prefix}lock:{key}")
            longest = max(longest, ttl if ttl and ttl > 0 else 0)
        return longest

    async def failed(self, username: str, ip: str | None) -> bool:
        """Record a failure; True when it locked the username or the IP."""
        locked = False
        for key in self._keys(username, ip):
            count_key = f"{self.prefix}fail:{key}"
            count = await self._call("incr", count_key)
            if count == 1:
                await self._call("expire", count_key, WINDOW_SECONDS)
            if count >= MAX_FAILURES:
                await self._call(
                    "set", f"{self.prefix}lock:{key}", str(int(time.time())), ex=LOCK_SECONDS
                )
                await self._call("delete", count_key)
                locked = True
        return locked

    async def succeeded(self, username: str, ip: str | None) -> None:
        """A successful login clears the username's failures (not the IP's)."""
        await self._call("delete", f"{self.prefix}fail:{self._keys(username, None)[0]}")
