"""Repair of writes that died half-way, from the records they left in `write_journal`.

A write records the users and days its side effects touch before its first change and removes
the record after its last (`services/effects.py`). A record older than
`CHATADMIN_REPAIR_AFTER_S` belongs to a write that died in between: its messages or threads may
be stored while the day buckets and its users' counters miss them (or hold part of them). Those
are recounted from the stored data: the org's day buckets from the record's first day on
(`rollup.rebuild`), then each named user's `message_count` and `thread_count` as the sums of
their day and month buckets, then each named thread: its rollups recounted from its messages,
and its seqs made 0..n-1 again where a dead writer's reservation left a gap (the messages after
the gap move down, in order; `next_seq` and the claims follow).

A recount is only right while no other write of the org is half-way (its documents would be
counted and then its increments added on top), so an org is repaired only when it has no fresh
record, checked again after each count and before its writes; otherwise it waits for the next
round. Runs every `CHATADMIN_REPAIR_INTERVAL_S` in each app process (records are leased, so one
process works on each) and from `manage.py rollup --repair`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from pymongo import UpdateOne
from pymongo.errors import PyMongoError

from chatadmin.background import pause, stopping
from chatadmin.clock import from_ms, now_ms
from chatadmin.models import DailyAnalytics, Message, Thread, User
from chatadmin.models.analytics import ORG_WIDE
from chatadmin.models.journal import WriteJournal
from chatadmin.models.retention import MonthlyAnalytics, RetentionRun
from chatadmin.models.thread import CLAIMS_KEPT
from chatadmin.services import rollup
from chatadmin.services.claims import claim_of
from chatadmin.services.messages import THREAD_ROLLUPS, thread_counters

log = logging.getLogger("chatadmin.repair")

LEASE_S = 60.0  # a repairer that died leaves its records to another after this


@dataclass
class Repaired:
    """What one round did for one org."""

    org_id: str
    records: int
    rebuilt: rollup.RollupReport | None = None
    users: list[str] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    renumbered: int = 0  # messages whose seq moved down to close a gap
    waiting: str = ""  # why the org was left for a later round


async def repair_stale(stale_s: float) -> list[Repaired]:
    """Repair every org with records older than `stale_s`; returns what was done."""
    now = now_ms()
    coll = WriteJournal.get_pymongo_collection()
    query = {"created_at_ms": {"$lt": now - int(stale_s * 1000)}, "repair_lease_ms": {"$lt": now}}
    stale: dict[str, list[dict]] = {}
    async for doc in coll.find(query).sort([("created_at_ms", 1)]).limit(500):
        stale.setdefault(doc["org_id"], []).append(doc)
    return [await _repair_org(org, docs, stale_s) for org, docs in stale.items()]


async def _repair_org(org_id: str, docs: list[dict], stale_s: float) -> Repaired:
    done = Repaired(org_id, len(docs))

    async def quiet() -> bool:
        fresh = {"org_id": org_id, "created_at_ms": {"$gte": now_ms() - int(stale_s * 1000)}}
        return await WriteJournal.get_pymongo_collection().find_one(fresh, {"_id": 1}) is None

    if not await quiet():
        done.waiting = "writes of the org are in flight"
        return done
    ids = [d["_id"] for d in docs]
    coll = WriteJournal.get_pymongo_collection()
    until = now_ms() + int(LEASE_S * 1000)
    ours = {"_id": {"$in": ids}, "repair_lease_ms": until}

    async def release() -> None:
        await coll.update_many(ours, {"$set": {"repair_lease_ms": 0}})

    taken = await coll.update_many(
        {"_id": {"$in": ids}, "repair_lease_ms": {"$lt": now_ms()}},
        {"$set": {"repair_lease_ms": until}},
    )
    if taken.modified_count != len(ids):
        await release()  # the part we took goes back at once
        done.waiting = "another process is repairing it"
        return done
    try:
        first = min(d.get("first_day_ms") or 0 for d in docs)
        since = from_ms(first) if first else None
        done.rebuilt = await rollup.rebuild(org_id, since, quiet=quiet)
        users = sorted({u for d in docs for u in d.get("users", [])})
        threads = sorted({t for d in docs for t in d.get("threads", [])})
        if (
            not done.rebuilt.ok
            or not await _recount_users(org_id, users, quiet)
            or not await _repair_threads(org_id, threads, quiet, done)
        ):
            done.waiting = "writes of the org began meanwhile"
            await release()
            return done
    except BaseException:
        # A round that failed (the database lost mid-way) gives its records back for the next
        # round rather than holding them for the whole lease.
        with contextlib.suppress(PyMongoError, asyncio.CancelledError):
            await release()
        raise
    done.users, done.threads = users, threads
    await coll.delete_many({"_id": {"$in": ids}})
    return done


async def _recount_users(org_id: str, users: list[str], quiet) -> bool:
    """Set each user's message and thread counts to the sums of their buckets; False when a
    write began meanwhile (nothing written then)."""
    if not users or await _analytics_purged(org_id):
        return True  # purged buckets no longer hold what the users' counters count
    sums: dict[str, dict[str, int]] = {u: {"messages": 0, "threads": 0} for u in users}
    for model in (DailyAnalytics, MonthlyAnalytics):
        query = {"org_id": org_id, "user_id": {"$in": users}}
        fields = {"user_id": 1, "messages": 1, "threads": 1}
        async for b in model.get_pymongo_collection().find(query, fields):
            if b["user_id"] != ORG_WIDE:
                sums[b["user_id"]]["messages"] += int(b.get("messages") or 0)
                sums[b["user_id"]]["threads"] += int(b.get("threads") or 0)
    if not await quiet():
        return False
    ops = [
        UpdateOne(
            User.key_of(org_id, u),
            {"$set": {"message_count": s["messages"], "thread_count": s["threads"]}},
        )
        for u, s in sums.items()
    ]
    await User.get_pymongo_collection().bulk_write(ops, ordered=False)
    return True


async def _repair_threads(org_id: str, threads: list[str], quiet, done: Repaired) -> bool:
    """Recount each thread's rollups from its messages and close its seq gaps; False when a
    write began meanwhile (the thread where it was seen is left as it was)."""
    for tid in threads:
        key = Thread.key_of(org_id, tid)
        thread = await Thread.get_pymongo_collection().find_one(key, {"next_seq": 1})
        if thread is None:
            continue
        stored = await Message.find({"org_id": org_id, "thread_id": tid}).sort("+seq").to_list()
        counted = dict.fromkeys(THREAD_ROLLUPS, 0)
        for m in stored:
            if not m.deleted:
                for name, amount in thread_counters(m).items():
                    counted[name] += amount
        if not await quiet():
            return False
        # Moving down in seq order: the seq each message takes is free by then (a unique index).
        for new, m in enumerate(stored):
            if m.seq != new:
                await Message.get_pymongo_collection().update_one(
                    {"_id": m.id, "seq": m.seq}, {"$set": {"seq": new}}
                )
                done.renumbered += 1
        claims = [claim_of(m.message_id) for m in stored[-CLAIMS_KEPT:]]
        fields = counted | {"next_seq": len(stored), "recent_claims": claims}
        # Only if no seq was reserved since it was read; otherwise a later round does it.
        moved = await Thread.get_pymongo_collection().update_one(
            {**key, "next_seq": thread["next_seq"]}, {"$set": fields}
        )
        if moved.matched_count != 1:
            return False
    return True


async def _analytics_purged(org_id: str) -> bool:
    """Whether retention deleted day or month buckets of the org."""
    names = {DailyAnalytics.Settings.name, MonthlyAnalytics.Settings.name}
    async for run in RetentionRun.get_pymongo_collection().find({}, {"units": 1}):
        for unit in run.get("units", []):
            purged = unit["action"] == "purge" and unit["state"] != "planned"
            if purged and unit["org_id"] == org_id and unit["collection"] in names:
                return True
    return False


async def pending(stale_s: float) -> int:
    """How many records wait for a repair (shown by `/readyz`)."""
    cutoff = now_ms() - int(stale_s * 1000)
    found = WriteJournal.get_pymongo_collection().find({"created_at_ms": {"$lt": cutoff}})
    return len(await found.limit(1001).to_list())


async def run_forever(interval_s: float, stale_s: float) -> None:
    """Repair every `interval_s` until cancelled; a failed round is logged and retried."""
    while True:
        try:
            for done in await repair_stale(stale_s):
                if done.waiting:
                    log.info("repair of org %s waits: %s", done.org_id, done.waiting)
                else:
                    log.warning(
                        "repaired org %s after %d write(s) that died half-way: day buckets "
                        "recounted, counters of %d user(s) and %d thread(s) reset, %d seq(s) "
                        "moved down to close gaps",
                        done.org_id, done.records, len(done.users), len(done.threads),
                        done.renumbered,
                    )  # fmt: skip
        except PyMongoError as exc:
            if stopping():
                raise asyncio.CancelledError from exc
            log.warning("repair round failed: %s", exc)
        await pause(interval_s)
