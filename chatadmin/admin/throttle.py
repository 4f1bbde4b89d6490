"""Failed-login throttling: after 5 failures in 15 minutes for a username or an IP address,
further tries are refused for 15 minutes.

A try takes its place in the count (an atomic INCR) before the password is checked, and a
success gives it back: parallel tries cannot slip past the limit between a check and a count,
so at most 5 passwords are checked per username and per address in a window.

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

    async def reserve(self, username: str, ip: str | None) -> bool:
        """Count a try before its password is checked; False when it is over the limit."""
        allowed = True
        for key in self._keys(username, ip):
            count_key = f"{self.prefix}fail:{key}"
            count = await self._call("incr", count_key)
            if count == 1:
                await self._call("expire", count_key, WINDOW_SECONDS)
            if count > MAX_FAILURES:
                allowed = False
        return allowed

    async def failed(self, username: str, ip: str | None) -> bool:
        """A reserved try failed; True when it locked the username or the IP."""
        locked = False
        for key in self._keys(username, ip):
            count_key = f"{self.prefix}fail:{key}"
            count = int(await self._call("get", count_key) or 0)
            if count >= MAX_FAILURES:
                await self._call(
                    "set",
                    f"{self.prefix}lock:{key}",
                    str(int(time.time())),
                    ex=LOCK_SECONDS,
                    nx=True,
                )
                locked = True
        return locked

    async def succeeded(self, username: str, ip: str | None) -> None:
        """A successful login clears the username's failures and gives the IP its try back."""
        user_key, *ip_keys = self._keys(username, ip)
        await self._call("delete", f"{self.prefix}fail:{user_key}")
        for key in ip_keys:
            if await self._call("decr", f"{self.prefix}fail:{key}") <= 0:
                await self._call("delete", f"{self.prefix}fail:{key}")

    async def first_refusal(self, ip: str | None) -> bool:
        """True for the first refused try from `ip` in a minute (the one worth an audit entry)."""
        return bool(await self._call("set", f"{self.prefix}refused:{ip}", "1", ex=60, nx=True))
