"""Caches in Redis in front of MongoDB: the AI response cache (`ai-cache:{org}:{key}`, 1 hour,
in front of the 24-hour `cache` collection) and the thread context cache (`context:{org:thread}`,
30 minutes, dropped by every write to the thread). A cache that cannot be reached is a miss,
never an error."""

from __future__ import annotations

import json
from typing import Any

from chatadmin.realtime import keys
from chatadmin.realtime.guard import Realtime, RealtimeDown

AI_CACHE_S = 3600
CONTEXT_S = 30 * 60


def _ai_key(rt: Realtime, org_id: str, cache_key: str) -> str:
    return rt.key(keys.ai_cache(f"{org_id}:{cache_key}"))


async def ai_get(rt: Realtime, org_id: str, cache_key: str) -> dict[str, Any] | None:
    try:
        raw = await rt.run(lambda c: c.get(_ai_key(rt, org_id, cache_key)))
    except RealtimeDown:
        return None
    return json.loads(raw) if raw else None


async def ai_put(rt: Realtime, org_id: str, cache_key: str, entry: dict, ttl_s: int) -> None:
    body = json.dumps(entry, separators=(",", ":"), default=str)
    ttl = max(1, min(AI_CACHE_S, ttl_s))
    try:
        await rt.run(lambda c: c.set(_ai_key(rt, org_id, cache_key), body, ex=ttl))
    except RealtimeDown:
        pass


async def ai_drop(rt: Realtime, org_id: str, cache_key: str) -> None:
    try:
        await rt.run(lambda c: c.delete(_ai_key(rt, org_id, cache_key)))
    except RealtimeDown:
        pass


async def context_get(rt: Realtime, org_id: str, thread_id: str, variant: str) -> dict | None:
    key = rt.key(keys.context(org_id, thread_id))
    try:
        raw = await rt.run(lambda c: c.hget(key, variant))
    except RealtimeDown:
        return None
    return json.loads(raw) if raw else None


async def context_put(rt: Realtime, org_id: str, thread_id: str, variant: str, body: dict) -> None:
    """Cache one variant (message and analysis counts) in the thread's hash; one key per
    thread, so a write drops every variant with one `DEL`."""
    key = rt.key(keys.context(org_id, thread_id))

    async def write(client):
        await client.hset(key, mapping={variant: json.dumps(body, separators=(",", ":"))})
        await client.expire(key, CONTEXT_S)

    try:
        await rt.run(write)
    except RealtimeDown:
        pass


async def context_drop(rt: Realtime, org_id: str, thread_ids: set[str]) -> None:
    """Forget the cached contexts of these threads (their data changed)."""

    async def drop(client):
        for thread_id in thread_ids:  # one key each: a DEL per slot on a cluster
            await client.delete(rt.key(keys.context(org_id, thread_id)))

    try:
        await rt.run(drop)
    except RealtimeDown:
        rt.warn("thread context caches are not dropped: Redis is not reachable")
