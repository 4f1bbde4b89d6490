"""The Redis connection, or an in-process stand-in when `REDIS_URL` is unset.

The stand-in keeps the same few commands in one process's memory (with expiry), so a single
process works without Redis; a warning says that real-time state is then per-process.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from typing import Any

import redis.asyncio as aioredis

from chatadmin.settings import Settings

log = logging.getLogger("chatadmin.realtime")


class InProcessStore:
    """A per-process key-value store with expiry that answers the Redis commands we use."""

    kind = "in-process"

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._expires: dict[str, float] = {}

    def _live(self, key: str) -> bool:
        exp = self._expires.get(key)
        if exp is not None and exp <= time.monotonic():
            self._data.pop(key, None)
            self._expires.pop(key, None)
        return key in self._data

    async def ping(self) -> bool:
        return True

    async def get(self, key: str) -> Any:
        return self._data.get(key) if self._live(key) else None

    async def set(self, key: str, value: Any, ex: int | None = None, nx: bool = False) -> bool:
        if nx and self._live(key):
            return False
        self._data[key] = str(value).encode() if not isinstance(value, bytes) else value
        if ex is not None:
            self._expires[key] = time.monotonic() + ex
        else:
            self._expires.pop(key, None)
        return True

    async def incr(self, key: str, amount: int = 1) -> int:
        value = int(self._data[key]) + amount if self._live(key) else amount
        self._data[key] = str(value).encode()
        return value

    async def expire(self, key: str, seconds: int) -> bool:
        if not self._live(key):
            return False
        self._expires[key] = time.monotonic() + seconds
        return True

    async def ttl(self, key: str) -> int:
        if not self._live(key):
            return -2
        exp = self._expires.get(key)
        return -1 if exp is None else max(0, round(exp - time.monotonic()))

    async def delete(self, *keys: str) -> int:
        count = 0
        for key in keys:
            if self._live(key):
                count += 1
            self._data.pop(key, None)
            self._expires.pop(key, None)
        return count

    async def keys(self, pattern: str = "*") -> list[bytes]:
        return [
            k.encode() for k in list(self._data) if self._live(k) and fnmatch.fnmatch(k, pattern)
        ]

    async def aclose(self) -> None:
        self._data.clear()
        self._expires.clear()


def connect(settings: Settings) -> aioredis.Redis | InProcessStore:
    """A Redis client for `REDIS_URL`, or the in-process stand-in (with a warning)."""
    if settings.redis_url:
        timeout = settings.chatadmin_redis_timeout_ms / 1000
        return aioredis.from_url(
            settings.redis_url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            health_check_interval=30,
        )
    log.warning("REDIS_URL is not set: real-time state is kept per process (in memory)")
    return InProcessStore()
