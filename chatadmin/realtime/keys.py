"""The Redis key of every piece of real-time state (seed 004's patterns), under the configured
prefix.

Keys that one operation touches together carry the same Redis Cluster hash tag (the part in
braces), so they land in one slot and a Lua script or a MULTI over them works on a cluster:
everything about one conversation is tagged `{org:thread}`, a user's rate-limit windows
`{org:user}`, an API key's `{key:id}`. Ids are unique per org only, so the org is in the tag.
"""

from __future__ import annotations

WINDOWS = {"minute": 60, "hour": 3600, "day": 86400}


def conversation(org_id: str, thread_id: str) -> str:
    return f"{{{org_id}:{thread_id}}}"


def presence(org_id: str, user_id: str) -> str:
    return f"presence:{{{org_id}:{user_id}}}"


def session(session_id: str) -> str:
    return f"session:{{{session_id}}}"


def typing(org_id: str, thread_id: str, user_id: str) -> str:
    return f"typing:{conversation(org_id, thread_id)}:{user_id}"


def typing_pattern(org_id: str, thread_id: str) -> str:
    return f"typing:{conversation(org_id, thread_id)}:*"


def queue(org_id: str, thread_id: str) -> str:
    """The conversation's event stream (seed 004's message queue)."""
    return f"queue:{conversation(org_id, thread_id)}"


def participants(org_id: str, thread_id: str) -> str:
    return f"participants:{conversation(org_id, thread_id)}"


def room(org_id: str, thread_id: str) -> str:
    return f"room:{conversation(org_id, thread_id)}"


def processing(org_id: str, thread_id: str, message_id: str) -> str:
    return f"ai-queue:{conversation(org_id, thread_id)}:{message_id}"


def context(org_id: str, thread_id: str) -> str:
    return f"context:{conversation(org_id, thread_id)}"


def ai_cache(query_hash: str) -> str:
    return f"ai-cache:{query_hash}"


def user_rate(org_id: str, user_id: str, window: str) -> str:
    return f"ratelimit:{{{org_id}:{user_id}}}:{window}"


def key_rate(key_id: str, window: str) -> str:
    return f"ratelimit:{{key:{key_id}}}:{window}"
