"""The result cache: key = sha256 of the canonical question and parameters, TTL 24 h by default."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from pymongo import ReturnDocument

from chatadmin.clock import to_ms, utcnow
from chatadmin.exceptions import Invalid
from chatadmin.models import CacheEntry
from chatadmin.services.documents import write_whole

DEFAULT_TTL_SECONDS = 24 * 3600


def canonical_question(question: str) -> str:
    """Trimmed, whitespace runs collapsed, case-folded."""
    return " ".join(question.split()).casefold()


def cache_key(question: str, parameters: dict[str, Any] | None = None) -> str:
    """sha256 of the canonical question and the parameters (key order irrelevant)."""
    payload = json.dumps(
        {"q": canonical_question(question), "p": parameters or {}},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


async def put(
    org_id: str,
    question: str,
    parameters: dict[str, Any] | None,
    result: Any,
    *,
    ttl_seconds: int | None = None,
    analysis_id: str | None = None,
) -> CacheEntry:
    """Store (or replace) a result; it expires after `ttl_seconds`."""
    ttl = DEFAULT_TTL_SECONDS if ttl_seconds is None else int(ttl_seconds)
    if ttl <= 0 or ttl > 365 * 24 * 3600:
        raise Invalid("ttl_seconds must be between 1 and one year")
    key = cache_key(question, parameters)
    now = utcnow()
    expires = now + timedelta(seconds=ttl)
    entry = CacheEntry(
        org_id=org_id,
        cache_key=key,
        question=canonical_question(question),
        parameters=parameters or {},
        result=result,
        analysis_id=analysis_id,
        expires_at=expires,
        expires_at_ms=to_ms(expires),
    )
    return await write_whole(entry, {"org_id": org_id, "cache_key": key}, keep=("hit_count",))


async def lookup(
    org_id: str, question: str, parameters: dict[str, Any] | None = None
) -> CacheEntry | None:
    """The live entry for question + parameters (counting the hit), or None."""
    now = utcnow()
    doc = await CacheEntry.get_pymongo_collection().find_one_and_update(
        {
            "org_id": org_id,
            "cache_key": cache_key(question, parameters),
            "expires_at_ms": {"$gt": to_ms(now)},
        },
        {"$inc": {"hit_count": 1}, "$set": {"last_used_at_ms": to_ms(now)}},
        return_document=ReturnDocument.AFTER,
    )
    return CacheEntry.model_validate(doc) if doc else None


async def count_hit(org_id: str, key: str) -> int | None:
    """Count a hit served from the Redis copy; the new hit count, or None when the entry has
    expired or is gone."""
    now = utcnow()
    doc = await CacheEntry.get_pymongo_collection().find_one_and_update(
        {"org_id": org_id, "cache_key": key, "expires_at_ms": {"$gt": to_ms(now)}},
        {"$inc": {"hit_count": 1}, "$set": {"last_used_at_ms": to_ms(now)}},
        projection={"hit_count": 1},
        return_document=ReturnDocument.AFTER,
    )
    return doc["hit_count"] if doc else None


async def invalidate(org_id: str, question: str, parameters: dict[str, Any] | None = None) -> bool:
    result = await CacheEntry.get_pymongo_collection().delete_one(
        {"org_id": org_id, "cache_key": cache_key(question, parameters)}
    )
    return result.deleted_count == 1
