"""The Redis connection, or an in-process stand-in when `REDIS_URL` is unset.

The stand-in keeps the same few commands in one process's memory (with expiry), so a single
process works without Redis; a warning says that real-time state is then per-process. Its
streams hold at most `STREAM_ENTRIES` entries in all, the oldest dropped first: Redis keeps an
hour of every conversation's events, which in a process's memory would grow with the traffic
(an hour at 1,000 messages a second is 3.6 million events).
"""

from __future__ import annotations

import asyncio
import collections
import fnmatch
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from chatadmin.settings import Settings, redact_url

log = logging.getLogger("chatadmin.realtime")

STREAM_ENTRIES = 20_000  # entries of all the stand-in's streams together


class InProcessStore:
    """A per-process key-value store with expiry that answers the Redis commands we use."""

    kind = "in-process"

    def __init__(self, stream_entries: int = STREAM_ENTRIES) -> None:
        self._data: dict[str, Any] = {}
        self._expires: dict[str, float] = {}
        self._seq = 0  # stream ids: ms-seq, increasing within the process
        self._last_ms = 0
        self._appended = asyncio.Event()
        self._stream_entries = stream_entries
        self._appends: collections.deque[tuple[str, str]] = collections.deque()  # (key, id)
        self.evicted_through = "0-0"  # the newest entry dropped for the bound (ids are ordered)

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

    async def decr(self, key: str, amount: int = 1) -> int:
        return await self.incr(key, -amount)

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

    async def scan_iter(self, match: str = "*", count: int | None = None):
        for key in await self.keys(match):
            yield key

    # -- hashes and sets ---------------------------------------------------------------------

    async def hset(self, key: str, mapping: dict[str, Any]) -> int:
        current = self._data[key] if self._live(key) else {}
        fresh = sum(1 for k in mapping if k not in current)
        current.update({k: str(v).encode() for k, v in mapping.items()})
        self._data[key] = current
        return fresh

    async def hget(self, key: str, field: str) -> bytes | None:
        return self._data[key].get(field) if self._live(key) else None

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return {k.encode(): v for k, v in self._data[key].items()} if self._live(key) else {}

    async def sadd(self, key: str, *members: str) -> int:
        current = self._data[key] if self._live(key) else set()
        fresh = len(set(members) - current)
        current.update(members)
        self._data[key] = current
        return fresh

    async def srem(self, key: str, *members: str) -> int:
        if not self._live(key):
            return 0
        current = self._data[key]
        gone = len(current & set(members))
        current.difference_update(members)
        if not current:  # as Redis: an empty set is no key at all
            await self.delete(key)
        return gone

    async def smembers(self, key: str) -> set[bytes]:
        return {m.encode() for m in self._data[key]} if self._live(key) else set()

    async def scard(self, key: str) -> int:
        return len(self._data[key]) if self._live(key) else 0

    # -- streams -----------------------------------------------------------------------------

    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        if ms <= self._last_ms:
            ms, self._seq = self._last_ms, self._seq + 1
        else:
            self._seq = 0
        self._last_ms = ms
        return f"{ms}-{self._seq}"

    async def xadd(
        self, key: str, fields: dict[str, Any], maxlen: int | None = None,
        minid: str | None = None, approximate: bool = True,
    ) -> bytes:  # fmt: skip
        entries = self._data[key] if self._live(key) else []
        entry_id = self._next_id()
        entries.append((entry_id, {k.encode(): str(v).encode() for k, v in fields.items()}))
        if minid is not None:
            entries[:] = [e for e in entries if _id_key(e[0]) >= _id_key(minid)]
        if maxlen is not None and len(entries) > maxlen:
            del entries[: len(entries) - maxlen]
        self._data[key] = entries
        self._appends.append((key, entry_id))
        self._bound_streams()
        self._appended.set()
        self._appended = asyncio.Event()
        return entry_id.encode()

    def _bound_streams(self) -> None:
        """Drop the oldest entries of all streams beyond `stream_entries`. Appends are recorded
        in order; one whose entry is gone already (trimmed, deleted, expired) is skipped."""
        while len(self._appends) > self._stream_entries:
            key, entry_id = self._appends.popleft()
            entries = self._data.get(key)
            if isinstance(entries, list) and entries and entries[0][0] == entry_id:
                del entries[0]
                self.evicted_through = entry_id
                if not entries:
                    self._data.pop(key, None)
                    self._expires.pop(key, None)

    async def xrange(self, key: str, min: str = "-", max: str = "+", count: int | None = None):
        entries = self._data[key] if self._live(key) else []
        lo_open = min.startswith("(")
        lo = None if min == "-" else _id_key(min.lstrip("("))
        hi = None if max == "+" else _id_key(max)
        out = []
        for entry_id, fields in entries:
            k = _id_key(entry_id)
            if lo is not None and (k < lo or (lo_open and k == lo)):
                continue
            if hi is not None and k > hi:
                continue
            out.append((entry_id.encode(), fields))
            if count is not None and len(out) >= count:
                break
        return out

    async def xread(
        self, streams: dict[str, str], count: int | None = None, block: int | None = None
    ):
        deadline = time.monotonic() + (block or 0) / 1000
        while True:
            found = []
            for key, after in streams.items():
                entries = await self.xrange(key, f"({after}", "+", count)
                if entries:
                    found.append([key.encode(), entries])
            if found or block is None or time.monotonic() >= deadline:
                return found
            waiter = self._appended
            try:
                await asyncio.wait_for(waiter.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return []

    async def aclose(self) -> None:
        self._data.clear()
        self._expires.clear()


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


POOL_SIZE = 64  # connections per client; more concurrent commands wait for a free one
CONNECT_S = 0.5  # a new connection may take this long (a burst of them on a busy host)


def stale_retry() -> Retry:
    """One immediate retry on a fresh connection after a connection error: a pooled connection
    from before a Redis restart fails once, and that must not count as Redis being down. A
    timeout is not retried (it would double the wait the timeout bounds)."""
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def connect(settings: Settings) -> aioredis.Redis | InProcessStore:
    """A Redis client for `REDIS_URL`, or the in-process stand-in (with a warning).

    Commands time out after `CHATADMIN_REDIS_TIMEOUT_MS`; a bounded pool makes a burst of
    requests share connections instead of opening one each (each one a connect to wait for).
    """
    if settings.redis_url:
        timeout = settings.chatadmin_redis_timeout_ms / 1000
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=POOL_SIZE,
            timeout=max(timeout, CONNECT_S),
            socket_connect_timeout=max(timeout, CONNECT_S),
            socket_timeout=timeout,
            health_check_interval=30,
            retry=stale_retry(),
        )
        log.info("redis: %s (keys under %r)", redact_url(settings.redis_url), settings.redis_prefix)
        return aioredis.Redis(connection_pool=pool)
    log.warning(
        "redis: REDIS_URL is not set; real-time state is kept in this process only (in memory)"
    )
    return InProcessStore()


def connect_blocking(settings: Settings, shared: Any) -> Any:
    """A second client for blocking stream reads (no short socket timeout), or the shared
    in-process store."""
    if not settings.redis_url:
        return shared
    return aioredis.from_url(
        settings.redis_url,
        socket_connect_timeout=max(settings.chatadmin_redis_timeout_ms / 1000, CONNECT_S),
        socket_timeout=settings.chatadmin_sse_heartbeat_s + 5,
        health_check_interval=30,
        retry=stale_retry(),
    )
