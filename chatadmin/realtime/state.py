"""Presence, typing and AI processing status in Redis, with seed 004's keys and TTLs: presence
`sessionId|status|lastSeen` for 5 minutes (and the session hash for 24 hours), typing for 5
seconds, processing status (queued -> processing -> completed | failed, failed -> queued on a
retry) for 15 minutes. Typing and processing changes are published to the live tail."""

from __future__ import annotations

import time
from typing import Any

from chatadmin.exceptions import InvalidTransition
from chatadmin.realtime import events, keys
from chatadmin.realtime.guard import Realtime

PRESENCE_S = 5 * 60
SESSION_S = 24 * 3600
TYPING_S = 5
PROCESSING_S = 15 * 60
# The statuses a processing status may come from ("none": no status yet).
PROCESSING_FROM = {
    "queued": ("none", "failed"),
    "processing": ("queued",),
    "completed": ("processing",),
    "failed": ("processing",),
}

# KEYS[1]: the status hash. ARGV: target, now (ms), ttl (ms), allowed sources (comma-separated),
# error. Returns {1, previous} when applied, {0, current} when the move is not allowed.
MOVE = """
local current = redis.call('HGET', KEYS[1], 'status') or 'none'
local allowed = false
for source in string.gmatch(ARGV[4], '[^,]+') do
  if source == current then allowed = true end
end
if not allowed then return {0, current} end
local target, now = ARGV[1], ARGV[2]
redis.call('HSET', KEYS[1], 'status', target, 'updated_at', now)
if target == 'queued' then
  redis.call('HSET', KEYS[1], 'queued_at', now, 'started_at', '', 'completed_at', '', 'error', '')
  if current == 'failed' then redis.call('HINCRBY', KEYS[1], 'retry_count', 1)
  else redis.call('HSET', KEYS[1], 'retry_count', 0) end
elseif target == 'processing' then
  redis.call('HSET', KEYS[1], 'started_at', now)
else
  redis.call('HSET', KEYS[1], 'completed_at', now, 'error', ARGV[5])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, current}
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def set_presence(
    rt: Realtime, org_id: str, user_id: str, status: str, session_id: str | None = None
) -> dict:
    now = _now_ms()
    session = session_id or ""
    value = f"{session}|{status}|{now}"

    async def write(client):
        await client.set(rt.key(keys.presence(org_id, user_id)), value, ex=PRESENCE_S)
        if session_id:
            key = rt.key(keys.session(session_id))
            await client.hset(
                key,
                mapping={
                    "userId": user_id,
                    "organizationId": org_id,
                    "presenceStatus": status,
                    "lastActivity": now,
                },
            )
            await client.expire(key, SESSION_S)

    await rt.run(write)
    return {"user_id": user_id, "status": status, "session_id": session_id, "last_seen_ms": now}


async def get_presence(rt: Realtime, org_id: str, user_id: str) -> dict:
    raw = await rt.run(lambda c: c.get(rt.key(keys.presence(org_id, user_id))))
    if raw is None:
        return {"user_id": user_id, "status": "offline", "session_id": None, "last_seen_ms": None}
    session, status, seen = _text(raw).split("|", 2)
    return {
        "user_id": user_id,
        "status": status,
        "session_id": session or None,
        "last_seen_ms": int(seen),
    }


async def set_typing(rt: Realtime, org_id: str, thread_id: str, user_id: str) -> None:
    key = rt.key(keys.typing(org_id, thread_id, user_id))
    await rt.run(lambda c: c.set(key, "typing", ex=TYPING_S))
    await events.publish(org_id, thread_id, "typing", {"user_id": user_id, "typing": True})


async def who_is_typing(rt: Realtime, org_id: str, thread_id: str) -> list[str]:
    pattern = rt.key(keys.typing_pattern(org_id, thread_id))

    async def scan(client):
        return [_text(k) async for k in client.scan_iter(match=pattern)]

    found = await rt.run(scan)
    return sorted(k.rsplit(":", 1)[1] for k in found)


async def move_processing(
    rt: Realtime, org_id: str, thread_id: str, message_id: str, status: str, error: str = ""
) -> dict:
    """Move a message's AI processing status; InvalidTransition when the machine forbids it."""
    key = rt.key(keys.processing(org_id, thread_id, message_id))
    sources = PROCESSING_FROM[status]
    now = _now_ms()
    args = [status, now, PROCESSING_S * 1000, ",".join(sources), error or ""]
    if rt.in_process:
        applied, current = await rt.run(lambda store: _move_in_process(store, key, args))
    else:
        applied, current = await rt.run(lambda c: c.register_script(MOVE)(keys=[key], args=args))
    if not int(applied):
        raise InvalidTransition(f"processing cannot go from {_text(current)} to {status}")
    found = await get_processing(rt, org_id, thread_id, message_id)
    await events.publish(org_id, thread_id, "processing", found)
    return found


async def get_processing(rt: Realtime, org_id: str, thread_id: str, message_id: str) -> dict:
    key = rt.key(keys.processing(org_id, thread_id, message_id))
    raw = await rt.run(lambda c: c.hgetall(key))
    fields = {_text(k): _text(v) for k, v in raw.items()}
    if not fields:
        return {"message_id": message_id, "status": "none"}

    def ms(name: str) -> int | None:
        return int(fields[name]) if fields.get(name) else None

    return {
        "message_id": message_id,
        "status": fields["status"],
        "queued_at_ms": ms("queued_at"),
        "started_at_ms": ms("started_at"),
        "completed_at_ms": ms("completed_at"),
        "updated_at_ms": ms("updated_at"),
        "retry_count": int(fields.get("retry_count") or 0),
        "error": fields.get("error") or None,
    }


async def _move_in_process(store, key: str, args: list) -> tuple[int, str]:
    """The script's steps on the in-process store (one process, no await between them)."""
    target, now, ttl_ms, sources, error = args
    current_map = {_text(k): _text(v) for k, v in (await store.hgetall(key)).items()}
    current = current_map.get("status", "none")
    if current not in sources.split(","):
        return 0, current
    update: dict[str, Any] = {"status": target, "updated_at": now}
    if target == "queued":
        retries = int(current_map.get("retry_count") or 0) + 1 if current == "failed" else 0
        update |= {"queued_at": now, "started_at": "", "completed_at": "", "error": "",
                   "retry_count": retries}  # fmt: skip
    elif target == "processing":
        update["started_at"] = now
    else:
        update |= {"completed_at": now, "error": error}
    await store.hset(key, mapping=update)
    await store.expire(key, max(1, ttl_ms // 1000))
    return 1, current
