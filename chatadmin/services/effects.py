"""The side effects a write has on other documents (the day buckets of the analytics and the
users' counters), gathered while a write or a whole batch runs and applied once at its end.

Those changes and the write's own are separate documents, and there are no transactions, so a
write that dies between them (a killed worker, a database gone mid-batch) would leave counters
that miss it. So before its first change a write records which users, days and threads its
effects touch (`begin`, one small document in `write_journal`), and removes the record after
the last (`flush`); `services/repair.py` recounts what a record left behind names.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pymongo import UpdateOne

from chatadmin.clock import day_start, to_ms
from chatadmin.models import User
from chatadmin.models.journal import WriteJournal
from chatadmin.services import analytics


class Effects:
    """Analytics increments and user counter bumps, flushed in one bulk write each."""

    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self.analytics = analytics.Increments()
        self.users: dict[str, tuple[dict[str, int], int]] = {}
        self.journal: WriteJournal | None = None

    async def begin(
        self,
        users: Iterable[str | None],
        days: Iterable[datetime],
        threads: Iterable[str] = (),
    ) -> None:
        """Record, before the write changes anything, the users, days and threads its effects
        touch."""
        named, touched = {u for u in users if u}, set(threads)
        first = min((to_ms(day_start(d)) for d in days), default=None)
        if first is None and not named and not touched:
            return
        coll = WriteJournal.get_pymongo_collection()
        if self.journal is None:
            self.journal = WriteJournal(
                org_id=self.org_id,
                users=sorted(named),
                threads=sorted(touched),
                first_day_ms=first or 0,
            ).stamped()
            await coll.insert_one(self.journal.storage_fields())
            return
        more = named - set(self.journal.users)
        others = touched - set(self.journal.threads)
        earlier = first is not None and (
            not self.journal.first_day_ms or first < self.journal.first_day_ms
        )
        if not more and not others and not earlier:
            return
        change: dict = {}
        if more or others:
            self.journal.users = sorted({*self.journal.users, *more})
            self.journal.threads = sorted({*self.journal.threads, *others})
            # Only this writer changes its record, so it sets the whole lists: nx-27017 spends
            # ~8 ms on an `$addToSet` of a batch's ~130 threads, 0.2 ms on a `$set`.
            change["$set"] = {"users": self.journal.users, "threads": self.journal.threads}
        if earlier:
            self.journal.first_day_ms = first
            change["$min"] = {"first_day_ms": first}
        await coll.update_one(WriteJournal.key_of(self.org_id, self.journal.journal_id), change)

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
        """Apply everything gathered, clear the journal record, then start empty again."""
        await analytics.record_batch(self.org_id, self.analytics)
        ops = []
        for uid, (counts, last) in self.users.items():
            update: dict = {"$max": {"last_active_at_ms": last}}
            if any(counts.values()):
                update["$inc"] = {k: v for k, v in counts.items() if v}
            ops.append(UpdateOne(User.key_of(self.org_id, uid), update))
        if ops:
            await User.get_pymongo_collection().bulk_write(ops, ordered=False)
        if self.journal is not None:
            key = WriteJournal.key_of(self.org_id, self.journal.journal_id)
            await WriteJournal.get_pymongo_collection().delete_one(key)
        self.analytics, self.users, self.journal = analytics.Increments(), {}, None
