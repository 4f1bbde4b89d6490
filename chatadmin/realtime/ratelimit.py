"""Rate limits in Redis: fixed minute, hour and day windows per user (the limit by role: owner
100, leader 75, manager 50 messages a minute) and per API key (every request).

One Lua script checks every window and takes what they all allow, atomically, so concurrent
processes never overshoot. A batch asks for n and gets how many it may write (an ingest batch
refuses only its events past the limit). When Redis is down the limiter fails open, with one
warning a minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chatadmin.realtime import keys
from chatadmin.realtime.guard import Realtime, RealtimeDown
from chatadmin.settings import Settings

# KEYS: one key per window. ARGV: n, then per window its length (ms) and its limit.
# Returns: how many of n are allowed, and the limit, the count after and the ms to reset of the
# tightest window.
TAKE = """
local n = tonumber(ARGV[1])
local allowed, tight = n, 1
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i + 1])
  local left = limit - tonumber(redis.call('GET', key) or '0')
  if left < allowed then allowed, tight = math.max(left, 0), i end
end
local counts, ttls = {}, {}
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if allowed > 0 then
    count = redis.call('INCRBY', key, allowed)
    if count == allowed then redis.call('PEXPIRE', key, tonumber(ARGV[2 * i])) end
  end
  counts[i] = count
  ttls[i] = redis.call('PTTL', key)
end
return {allowed, tonumber(ARGV[2 * tight + 1]), counts[tight], ttls[tight]}
"""


@dataclass
class Taken:
    """What a take allowed, and what the tightest window says (for the X-RateLimit headers)."""

    allowed: int
    limit: int
    count: int
    reset_s: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }
        if self.allowed == 0:
            out["Retry-After"] = str(max(1, self.reset_s))
        return out


class RateLimiter:
    """The limits of the settings, applied through `Realtime`."""

    def __init__(self, realtime: Realtime, settings: Settings) -> None:
        self.realtime = realtime
        self.per_minute = {
            "owner": settings.chatadmin_rate_owner_per_minute,
            "leader": settings.chatadmin_rate_leader_per_minute,
            "manager": settings.chatadmin_rate_manager_per_minute,
        }
        self.per_hour = settings.chatadmin_rate_user_per_hour
        self.per_day = settings.chatadmin_rate_user_per_day
        self.key_per_minute = settings.chatadmin_rate_key_per_minute
        self._script = None

    async def messages(self, org_id: str, user_id: str, role: str | None, n: int = 1) -> Taken:
        """Take up to n messages from a user's minute, hour and day windows."""
        minute = self.per_minute.get(role or "manager", self.per_minute["manager"])
        limits = {"minute": minute, "hour": self.per_hour, "day": self.per_day}
        windows = [
            (self.realtime.key(keys.user_rate(org_id, user_id, w)), keys.WINDOWS[w], limit)
            for w, limit in limits.items()
        ]
        return await self._take(windows, n)

    async def request(self, key_id: str) -> Taken:
        """Take one request from an API key's minute window."""
        window = (self.realtime.key(keys.key_rate(key_id, "minute")), 60, self.key_per_minute)
        return await self._take([window], 1)

    async def _take(self, windows: list[tuple[str, int, int]], n: int) -> Taken:
        try:
            if self.realtime.in_process:
                return await self.realtime.run(lambda store: _take_in_process(store, windows, n))
            return await self.realtime.run(lambda client: self._take_redis(client, windows, n))
        except RealtimeDown:
            self.realtime.warn("rate limits are not enforced: Redis is not reachable")
            return Taken(n, windows[0][2], 0, windows[0][1])

    async def _take_redis(self, client, windows, n) -> Taken:
        if self._script is None:
            self._script = client.register_script(TAKE)
        args = [n]
        for _key, seconds, limit in windows:
            args += [seconds * 1000, limit]
        allowed, limit, count, ttl_ms = await self._script(
            keys=[k for k, _, _ in windows], args=args
        )
        return Taken(int(allowed), int(limit), int(count), max(0, math.ceil(int(ttl_ms) / 1000)))


async def _take_in_process(store, windows, n) -> Taken:
    """The script's steps on the in-process store (one process, no await between them)."""
    allowed, tight = n, 0
    for i, (key, _seconds, limit) in enumerate(windows):
        left = limit - int(await store.get(key) or 0)
        if left < allowed:
            allowed, tight = max(left, 0), i
    counts, ttls = [], []
    for key, seconds, _limit in windows:
        count = int(await store.get(key) or 0)
        if allowed > 0:
            count = await store.incr(key, allowed)
            if count == allowed:
                await store.expire(key, seconds)
        counts.append(count)
        ttls.append(await store.ttl(key))
    return Taken(allowed, windows[tight][2], counts[tight], max(0, ttls[tight]))
