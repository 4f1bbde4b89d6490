"""AI memory (`chat_contexts`): create or update a context; expires 90 days after its last write."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from chatadmin.clock import to_ms, utcnow
from chatadmin.exceptions import NotFound
from chatadmin.models import ChatContext
from chatadmin.services.documents import write_whole

DEFAULT_TTL_DAYS = 90
FIELDS = {"thread_id", "scope_type", "scope_ref", "key_points", "decisions", "follow_ups",
          "previous_queries", "context_window", "references", "subject", "token_count"}  # fmt: skip


async def upsert_context(
    org_id: str, context_id: str, *, ttl_days: int = DEFAULT_TTL_DAYS, **fields: Any
) -> ChatContext:
    """Create or update a context; every write pushes its expiry `ttl_days` ahead."""
    unknown = set(fields) - FIELDS
    if unknown:
        raise ValueError(f"unknown context fields: {sorted(unknown)}")
    expires = utcnow() + timedelta(days=ttl_days)
    key = {"org_id": org_id, "context_id": str(context_id)}
    current = await ChatContext.find_one(key)
    base = current.model_dump(by_alias=True, include=FIELDS) if current else {}
    context = ChatContext.model_validate(
        {**base, **fields, **key, "expires_at": expires, "expires_at_ms": to_ms(expires)}
    )
    return await write_whole(context, key)


async def get_context(org_id: str, context_id: str) -> ChatContext:
    found = await ChatContext.find_one({"org_id": org_id, "context_id": str(context_id)})
    if found is None or found.expires_at_ms <= to_ms(utcnow()):
        raise NotFound(f"context {context_id!r} not found")
    return found
