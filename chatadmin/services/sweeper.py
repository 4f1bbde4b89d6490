"""The expiry sweeper: deletes expired cache entries, shares, contexts and connections.

Real MongoDB has TTL indexes for this (declared too), but its monitor runs only once a minute
and the embedded server has none, so the product deletes expired documents itself and behaves
the same on both. Documents with `expires_at_ms == 0` never expire.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from pymongo.errors import PyMongoError

from chatadmin.background import pause, stopping
from chatadmin.clock import to_ms, utcnow
from chatadmin.models import EXPIRING_MODELS

log = logging.getLogger("chatadmin.sweeper")


async def sweep_expired(now: datetime | None = None) -> dict[str, int]:
    """Delete every document that expired at or before `now`; counts per collection."""
    cutoff = to_ms(now or utcnow())
    deleted = {}
    for model in EXPIRING_MODELS:
        result = await model.get_pymongo_collection().delete_many(
            {"expires_at_ms": {"$gt": 0, "$lte": cutoff}}
        )
        deleted[model.Settings.name] = result.deleted_count
    return deleted


async def run_forever(interval_seconds: float) -> None:
    """Sweep every `interval_seconds` until cancelled; a failed round is logged and retried."""
    while True:
        try:
            counts = await sweep_expired()
            if any(counts.values()):
                log.info("swept expired documents: %s", counts)
        except PyMongoError as exc:
            if stopping():
                raise asyncio.CancelledError from exc
            log.warning("expiry sweep failed: %s", exc)
        await pause(interval_seconds)
