"""The side effects a write has on other documents (the day buckets of the analytics and the
users' counters), gathered while a write or a whole batch runs and applied once at its end."""

from __future__ import annotations

from datetime import datetime

from pymongo import UpdateOne

from chatadmin.models import User
from chatadmin.services import analytics


class Effects:
    """Analytics increments and user counter bumps, flushed in one bulk write each."""

    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self.analytics = analytics.Increments()
        self.users: dict[str, tuple[dict[str, int], int]] = {}

    def count(self, user_id: str | None, at: datetime, **increments: int) -> None:
        """Add to the analytics of the day `at` (the org's bucket and the user's)."""
        self.analytics.add(user_id, at, **increments)

    def bump_user(self, user_id: str | None, active_ms: int = 0, **incs: int) -> None:
        """Add to a user's `message_count`/`thread_count` and move their last activity."""
        if not user_id:
            return
        counts, last = self.users.get(user_id, ({}, 0))
        for name, amount in incs.items():
            counts[name] = counts.get(name, 0) + amount
        self.users[user_id] = (counts, max(last, active_ms))

    async def flush(self) -> None:
        """Apply everything gathered, then start empty again."""
        await analytics.record_batch(self.org_id, self.analytics)
        ops = []
        for uid, (counts, last) in self.users.items():
            update: dict = {"$max": {"last_active_at_ms": last}}
            if any(counts.values()):
                update["$inc"] = {k: v for k, v in counts.items() if v}
            ops.append(UpdateOne({"org_id": self.org_id, "user_id": uid}, update))
        if ops:
            await User.get_pymongo_collection().bulk_write(ops, ordered=False)
        self.analytics, self.users = analytics.Increments(), {}
