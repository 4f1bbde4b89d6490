"""Retention: seed 004's policy applied per org and collection, archive first, delete second.

`plan()` says what would go (the dry run). `run()` archives each unit of work to gzip JSONL,
re-reads the archive (count and sha256, recorded in the run's manifest) and only then deletes,
auditing every purge. A run is one `retention_runs` document whose units move planned ->
archived -> verified -> deleting -> deleted -> done and are saved at every step, so a run that
stopped (a crash, a corrupt archive, Ctrl-C) is resumed by the next invocation with the same
reference time and the same archive files: nothing is deleted that is not in a verified
archive, and nothing is archived twice. `restore()` puts an archive back (insert-if-missing:
twice is the same as once). docs/lifecycle.md has the policy, the formats and the reasoning.

Conversations go whole: a thread is purged with its messages and shares once its last
activity is older than the policy, so its counters go with it; staying threads keep every
message (a thread's seqs and counters stay whole). Analytics outlive conversations: purged
messages stay counted in the day buckets (and users' counters), which are folded into month
buckets after a year and purged after five.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import DeleteOne, ReplaceOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from chatadmin.clock import as_utc, from_ms, now_ms, to_ms, utcnow
from chatadmin.exceptions import ChatAdminError
from chatadmin.models import (
    AuditLog,
    ChatContext,
    Connection,
    DailyAnalytics,
    Message,
    SharedThread,
    Thread,
)
from chatadmin.models.analytics import COUNTERS
from chatadmin.models.base import TimestampedDocument, doc_key, rekeyed
from chatadmin.models.retention import MonthlyAnalytics, RetentionRun, RetentionUnit
from chatadmin.realtime import events
from chatadmin.services import archive, audit
from chatadmin.services.archive import ArchiveError
from chatadmin.services.threads import status_fields
from chatadmin.settings import Settings

log = logging.getLogger("chatadmin.retention")

DAY_MS = 24 * 3600 * 1000
BATCH = 500  # documents per delete or restore round trip
LEASE_MS = 5 * 60 * 1000  # a run that saved nothing for this long is taken to have died
RENEW_MS = 60 * 1000
SAMPLE = 1000  # ids an audit entry names (its counts cover every document)
SYSTEM = audit.Actor("system", "retention", via="cli")
MODELS: dict[str, type[TimestampedDocument]] = {
    m.Settings.name: m
    for m in (Thread, Message, SharedThread, ChatContext, Connection, DailyAnalytics)
} | {"chat_analytics_months": MonthlyAnalytics}
THREADS, MESSAGES, SHARES = "chat_sessions", "chat_messages", "shared_threads"
DAYS, MONTHS = "chat_analytics", "chat_analytics_months"
# Dependants are archived from the threads' archive and deleted once their thread is gone.
DEPENDANTS = (MESSAGES, SHARES)
RESTORE_ORDER = (THREADS, MESSAGES, SHARES, "chat_contexts", "connections", DAYS, MONTHS)

Say = Callable[[str], None]


class RetentionError(ChatAdminError):
    """A run stopped; the next `manage.py retention` resumes it."""

    code = "retention_failed"


class RetentionBusy(RetentionError):
    """Another run holds the lease."""

    code = "retention_busy"


# -- the policy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One line of the policy: a collection, how long it is kept, and what happens then."""

    collection: str
    seed_name: str
    days: int  # 0: kept forever
    action: str
    measured_from: str
    setting: str


def rules(settings: Settings) -> list[Rule]:
    """Seed 004's table as configured."""
    s = settings
    conv, msgs = s.chatadmin_retention_conversations_days, s.chatadmin_retention_messages_days
    keep = max(conv, msgs) if conv and msgs else 0  # a message outlives no conversation
    return [
        Rule(THREADS, "ChatConversations", keep,
             "purge (archive file, then delete, with its messages and shares)",
             "last activity (creation or newest message)",
             "CHATADMIN_RETENTION_CONVERSATIONS_DAYS"),
        Rule(THREADS, "ChatConversations", s.chatadmin_retention_conversations_archive_days,
             "mark archived (status `archived`, stays readable; unarchive brings it back)",
             "last activity", "CHATADMIN_RETENTION_CONVERSATIONS_ARCHIVE_DAYS"),
        Rule(MESSAGES, "ChatMessages", keep,
             "purged with their conversation, never one by one",
             "their conversation's last activity", "CHATADMIN_RETENTION_MESSAGES_DAYS"),
        Rule("chat_contexts", "ChatContexts", s.chatadmin_retention_contexts_days,
             "purge (archive file, then delete)", "last update",
             "CHATADMIN_RETENTION_CONTEXTS_DAYS"),
        Rule("connections", "ChatSessions (connections)", s.chatadmin_retention_connections_days,
             "purge (archive file, then delete)", "last update",
             "CHATADMIN_RETENTION_CONNECTIONS_DAYS"),
        Rule(DAYS, "ChatAnalytics", s.chatadmin_retention_analytics_fold_days,
             "fold day buckets into month buckets (`chat_analytics_months`)",
             "the bucket's month", "CHATADMIN_RETENTION_ANALYTICS_FOLD_DAYS"),
        Rule(MONTHS, "ChatAnalytics", s.chatadmin_retention_analytics_days,
             "purge day and month buckets (archive file, then delete)", "the bucket's month",
             "CHATADMIN_RETENTION_ANALYTICS_DAYS"),
    ]  # fmt: skip


def archive_dir(settings: Settings) -> Path:
    """Where archive files go (`CHATADMIN_RETENTION_ARCHIVE_DIR`, default `<data dir>/archive`)."""
    configured = settings.chatadmin_retention_archive_dir
    return Path(configured or settings.chatadmin_data_dir / "archive").resolve()


def policy_of(settings: Settings) -> dict[str, int]:
    """The policy's numbers, as a run records them."""
    return {
        name.removeprefix("chatadmin_retention_"): getattr(settings, name)
        for name in type(settings).model_fields
        if name.startswith("chatadmin_retention_") and name.endswith("_days")
    }


def _month_start(at: datetime) -> datetime:
    return as_utc(at).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def cutoffs(policy: dict[str, int], now_ms_: int) -> dict[str, int]:
    """Epoch-ms cutoffs of a policy at a reference time (0: that rule is off). Analytics
    cutoffs fall on the first of a month, so months are folded or purged whole."""
    now = from_ms(now_ms_)

    def ago(days: int) -> int:
        return to_ms(now - timedelta(days=days)) if days else 0

    days = {k: int(policy.get(k, 0) or 0) for k in (
        "conversations_days", "messages_days", "conversations_archive_days", "contexts_days",
        "connections_days", "analytics_days", "analytics_fold_days")}  # fmt: skip
    conv, msgs = days["conversations_days"], days["messages_days"]
    purge = ago(max(conv, msgs)) if conv and msgs else 0
    archive_days = days["conversations_archive_days"]
    mark = ago(archive_days) if archive_days and (not purge or ago(archive_days) > purge) else 0
    keep, fold = days["analytics_days"], days["analytics_fold_days"]
    analytics = to_ms(_month_start(now - timedelta(days=keep))) if keep else 0
    folding = to_ms(_month_start(now - timedelta(days=fold))) if fold else 0
    if folding and analytics and folding <= analytics:
        folding = 0
    return {
        "conversations": purge,
        "archive": mark,
        "contexts": ago(days["contexts_days"]),
        "connections": ago(days["connections_days"]),
        "analytics": analytics,
        "fold": folding,
    }


# -- what each unit selects --------------------------------------------------------------------


def _selection(unit: RetentionUnit, cut: dict[str, int]) -> dict[str, Any]:
    """The documents a direct unit takes (and, at delete time, still expired); `cut` holds
    the run's other cutoffs (the archive mark leaves what the purge takes)."""
    org, c = unit.org_id, unit.cutoff_ms
    if unit.collection == THREADS:
        query = {"org_id": org, "last_activity_ms": {"$lt": c}, "created_at_ms": {"$lt": c}}
        if unit.action == "archive_status":
            query["status"] = "active"
            if cut.get("conversations"):
                query["last_activity_ms"]["$gte"] = cut["conversations"]
        return query
    if unit.collection in ("chat_contexts", "connections"):
        return {"org_id": org, "updated_at_ms": {"$lt": c}}
    if unit.action == "fold":
        since = {"$gte": cut["analytics"]} if cut.get("analytics") else {}
        return {"org_id": org, "period_start_ms": {**since, "$lt": c}}
    return {"org_id": org, "period_start_ms": {"$lt": c}}  # analytics purges


def _units_of(org_id: str, cut: dict[str, int]) -> list[RetentionUnit]:
    """Every unit a run may have for one org, in the order they run."""
    out = []

    def add(collection: str, action: str, group: str, cutoff: int) -> None:
        if cutoff:
            out.append(RetentionUnit(org_id=org_id, collection=collection, action=action,
                                     group=group, cutoff_ms=cutoff))  # fmt: skip

    for collection in (THREADS, *DEPENDANTS):
        add(collection, "purge", "conversations", cut["conversations"])
    add(THREADS, "archive_status", "archive", cut["archive"])
    add("chat_contexts", "purge", "contexts", cut["contexts"])
    add("connections", "purge", "connections", cut["connections"])
    add(DAYS, "purge", "analytics", cut["analytics"])
    add(MONTHS, "purge", "analytics", cut["analytics"])
    add(DAYS, "fold", "fold", cut["fold"])
    return out


async def org_ids() -> list[str]:
    """Every org holding documents the policy covers."""
    found: set[str] = set()
    for name in (THREADS, "chat_contexts", "connections", DAYS, MONTHS):
        found.update(await MODELS[name].get_pymongo_collection().distinct("org_id"))
    return sorted(found)


async def _count(unit: RetentionUnit, cut: dict[str, int]) -> int:
    """How many documents the unit would take now."""
    if unit.collection in DEPENDANTS:
        total = 0
        threads = Thread.get_pymongo_collection().find(
            _selection(unit.model_copy(update={"collection": THREADS}), cut), {"thread_id": 1}
        )
        coll = MODELS[unit.collection].get_pymongo_collection()
        async for t in threads:
            total += await coll.count_documents(
                {"org_id": unit.org_id, "thread_id": t["thread_id"]}
            )
        return total
    coll = MODELS[unit.collection].get_pymongo_collection()
    return await coll.count_documents(_selection(unit, cut))


@dataclass
class Plan:
    """What a run would do now: units with the number of documents each would take."""

    now: datetime
    policy: dict[str, int]
    cutoffs: dict[str, int]
    units: list[RetentionUnit]
    unfinished: RetentionRun | None = None


async def plan(settings: Settings, now: datetime | None = None) -> Plan:
    """The dry run: what would go, per org and collection (nothing is written)."""
    now = as_utc(now or utcnow())
    policy = policy_of(settings)
    cut = cutoffs(policy, to_ms(now))
    units = []
    for org in await org_ids():
        for unit in _units_of(org, cut):
            unit.planned = await _count(unit, cut)
            keep_dependants = unit.collection in DEPENDANTS and any(
                u.org_id == org and u.collection == THREADS and u.action == "purge" for u in units
            )
            if unit.planned or keep_dependants:
                units.append(unit)
    unfinished = await RetentionRun.find_one({"slot": "active"})
    return Plan(now, policy, cut, units, unfinished)


# -- running -----------------------------------------------------------------------------------


@dataclass
class Context:
    """A run being worked on by this process, holding its lease."""

    run: RetentionRun
    owner: str
    say: Say
    saved_ms: int = 0
    cutoffs: dict[str, int] = field(default_factory=dict)
    sample: dict[str, list[str]] = field(default_factory=dict)  # ids named in audit entries

    @property
    def run_dir(self) -> Path:
        return Path(self.run.archive_dir) / self.run.run_id

    def path(self, unit: RetentionUnit) -> Path:
        return self.run_dir / (unit.file or "")

    async def save(self) -> None:
        """Store the run (renewing the lease); fails when another process took it over."""
        now = now_ms()
        self.run.lease_owner, self.run.lease_until_ms = self.owner, now + LEASE_MS
        self.run.updated_at_ms = now
        result = await RetentionRun.get_pymongo_collection().replace_one(
            {"_id": self.run.id, "lease_owner": self.owner}, self.run.storage_fields()
        )
        if result.matched_count != 1:
            raise RetentionBusy(f"run {self.run.run_id} was taken over by another process")
        self.saved_ms = now

    async def renew(self) -> None:
        """Keep the lease during a long step."""
        if now_ms() - self.saved_ms > RENEW_MS:
            await self.save()

    async def mark(self, unit: RetentionUnit, state: str, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(unit, name, value)
        unit.state, unit.updated_at_ms = state, now_ms()  # type: ignore[assignment]
        await self.save()
        self.write_manifest()

    def write_manifest(self) -> None:
        files = [u for u in self.run.units if u.file and u.sha256]
        if not files:
            return
        archive.write_manifest(
            self.run_dir,
            {
                "run_id": self.run.run_id,
                "now_ms": self.run.now_ms,
                "policy": self.run.policy,
                "units": [
                    {"org_id": u.org_id, "collection": u.collection, "action": u.action,
                     "cutoff_ms": u.cutoff_ms, "file": u.file, "count": u.archived,
                     "sha256": u.sha256, "bytes": u.bytes}
                    for u in files
                ],
            },
        )  # fmt: skip


async def _acquire(settings: Settings, now: datetime, say: Say) -> Context:
    """Resume the unfinished run (taking its lease if it lapsed) or start a new one."""
    owner = f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(4)}"
    coll = RetentionRun.get_pymongo_collection()
    clock = now_ms()
    for _attempt in range(3):
        doc = await coll.find_one({"slot": "active"})
        if doc is not None:
            taken = await coll.update_one(
                {"_id": doc["_id"], "lease_until_ms": {"$lt": clock}},
                {"$set": {"lease_owner": owner, "lease_until_ms": clock + LEASE_MS},
                 "$inc": {"resumed": 1}},
            )  # fmt: skip
            if taken.matched_count != 1:
                until = from_ms(doc["lease_until_ms"]).isoformat()
                raise RetentionBusy(
                    f"retention run {doc['run_id']} is in progress in another process "
                    f"(its lease runs until {until}); try again after that"
                )
            run = await RetentionRun.find_one({"_id": doc["_id"]})
            run.status, run.error = "running", None
            say(f"Resuming run {run.run_id} (reference time {from_ms(run.now_ms).isoformat()}).")
            ctx = Context(run, owner, say, saved_ms=clock)
            ctx.cutoffs = cutoffs(run.policy, run.now_ms)
            return ctx
        found = await plan(settings, now)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        run = RetentionRun(
            run_id=f"{stamp}-{secrets.token_hex(3)}",
            now_ms=to_ms(found.now),
            policy=found.policy,
            archive_dir=str(archive_dir(settings)),
            units=found.units,
            lease_owner=owner,
            lease_until_ms=clock + LEASE_MS,
            started_at_ms=clock,
        )
        try:
            await coll.insert_one(run.stamped().storage_fields())
        except DuplicateKeyError:
            continue  # another process started one meanwhile: resume (or refuse) that one
        say(f"Started run {run.run_id}: {len(run.units)} unit(s) of work.")
        ctx = Context(run, owner, say, saved_ms=clock)
        ctx.cutoffs = found.cutoffs
        return ctx
    raise RetentionBusy("could not start or resume a retention run")


async def run(
    settings: Settings, now: datetime | None = None, say: Say | None = None
) -> RetentionRun:
    """Resume the unfinished run, or plan and run a new one; returns it completed. Archives
    of runs past `CHATADMIN_RETENTION_ARCHIVE_KEEP_DAYS` are removed first."""
    say = say or (lambda line: log.info("%s", line))
    now = as_utc(now or utcnow())
    ctx = await _acquire(settings, now, say)
    try:
        await expire_archives(settings, now, say)
        groups: dict[tuple[str, str], list[RetentionUnit]] = {}
        for unit in ctx.run.units:
            groups.setdefault((unit.org_id, unit.group), []).append(unit)
        for units in groups.values():
            await _run_group(ctx, units)
    except BaseException as exc:
        ctx.run.status, ctx.run.error = "failed", f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):
            await ctx.save()
            await RetentionRun.get_pymongo_collection().update_one(
                {"_id": ctx.run.id, "lease_owner": ctx.owner}, {"$set": {"lease_until_ms": 0}}
            )  # stopped cleanly: the next invocation may resume at once
        if isinstance(exc, ChatAdminError):
            raise
        if isinstance(exc, Exception):
            raise RetentionError(f"run {ctx.run.run_id} stopped: {exc}") from exc
        raise
    ctx.run.status, ctx.run.error = "completed", None
    ctx.run.slot, ctx.run.finished_at_ms = ctx.run.run_id, now_ms()
    ctx.run.lease_until_ms = 0
    await ctx.save()
    say(f"Run {ctx.run.run_id} completed.")
    return ctx.run


async def _run_group(ctx: Context, units: list[RetentionUnit]) -> None:
    """Archive and verify every unit of a group, then delete in order."""
    if units[0].action == "archive_status":
        for unit in units:
            if unit.state != "done":
                await _mark_archived(ctx, unit)
        return
    started = any(u.state in ("deleting", "deleted", "done") for u in units)
    if not started and any(u.state == "planned" for u in units):
        for unit in units:  # dependants are archived from the threads' file: all again
            await _archive(ctx, unit)
    if not started:
        for unit in units:
            try:
                archive.verify(ctx.path(unit), unit.archived, unit.sha256 or "", unit.org_id)
            except ArchiveError as exc:
                for u in units:  # nothing was deleted: archive the group again next time
                    u.state, u.error = "planned", f"verification failed: {exc}"
                await ctx.save()
                raise
            if unit.state == "archived":
                await ctx.mark(unit, "verified", error=None)
    for unit in units:
        if unit.state == "done":
            continue
        if unit.state != "verified" or started:
            # Resuming a delete: the archive must still be what was verified.
            archive.verify(ctx.path(unit), unit.archived, unit.sha256 or "", unit.org_id)
        await ctx.mark(unit, "deleting")
        await (_fold(ctx, unit) if unit.action == "fold" else _delete(ctx, unit))
        await ctx.mark(unit, "deleted")
        await _audit(ctx, unit)
        await ctx.mark(unit, "done")
        ctx.say(f"  {unit.org_id} {unit.collection}: {_verb(unit)} {unit.deleted}"
                f" (archived {unit.archived}, kept {unit.kept})")  # fmt: skip


def _verb(unit: RetentionUnit) -> str:
    return "folded" if unit.action == "fold" else "deleted"


async def _source(ctx: Context, unit: RetentionUnit) -> AsyncIterator[dict]:
    """The stored documents a unit archives."""
    coll = MODELS[unit.collection].get_pymongo_collection()
    if unit.collection in DEPENDANTS:
        owner = next(u for u in ctx.run.units
                     if u.org_id == unit.org_id and u.collection == THREADS
                     and u.action == "purge")  # fmt: skip
        order = [("seq", 1)] if unit.collection == MESSAGES else [("_id", 1)]
        for thread in archive.read_lines(ctx.path(owner)):
            found = coll.find({"org_id": unit.org_id, "thread_id": thread["thread_id"]})
            async for doc in found.sort(order):
                yield doc
        return
    async for doc in coll.find(_selection(unit, ctx.cutoffs)):
        yield doc


async def _archive(ctx: Context, unit: RetentionUnit) -> None:
    """Write the unit's documents to its archive file (replacing a previous attempt's)."""
    suffix = ".fold" if unit.action == "fold" else ""
    unit.file = f"{unit.org_id}/{unit.collection}{suffix}.jsonl.gz"
    with archive.ArchiveWriter(ctx.path(unit)) as writer:
        async for doc in _source(ctx, unit):
            writer.write(doc)
            if writer.count % 1000 == 0:
                await ctx.renew()
    done = writer.result
    await ctx.mark(unit, "archived", archived=done.count, sha256=done.sha256, bytes=done.bytes,
                   deleted=0, kept=0, error=None)  # fmt: skip


def _batches(path: Path):
    """An archive file's documents, `BATCH` at a time."""
    batch = []
    for doc in archive.read_lines(path):
        batch.append(doc)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def _present(coll, ids: list) -> set:
    return {d["_id"] async for d in coll.find({"_id": {"$in": ids}}, {"_id": 1})}


async def _delete(ctx: Context, unit: RetentionUnit) -> None:
    """Delete the archived documents that are still expired (counted again from the archive
    on every attempt, so a resumed delete reports the same totals)."""
    coll = MODELS[unit.collection].get_pymongo_collection()
    unit.deleted = unit.kept = 0
    guard = _selection(unit, ctx.cutoffs)
    for batch in _batches(ctx.path(unit)):
        ids = [d["_id"] for d in batch]
        if unit.collection in DEPENDANTS:
            tids = sorted({d["thread_id"] for d in batch})
            live = {
                t["thread_id"]
                async for t in Thread.get_pymongo_collection().find(
                    {"org_id": unit.org_id, "thread_id": {"$in": tids}}, {"thread_id": 1}
                )
            }
            gone = [d["_id"] for d in batch if d["thread_id"] not in live]
            if gone:
                await coll.delete_many({"org_id": unit.org_id, "_id": {"$in": gone}})
        elif unit.collection == THREADS:
            # Still expired, and no message added since it was archived (not even backdated).
            deletes = [DeleteOne({**guard, "_id": d["_id"], "next_seq": d.get("next_seq", 0)})
                       for d in batch]  # fmt: skip
            await coll.bulk_write(deletes, ordered=False)
        else:
            await coll.delete_many({**guard, "_id": {"$in": ids}})
        present = await _present(coll, ids)
        unit.kept += len(present)
        unit.deleted += len(ids) - len(present)
        if unit.collection == THREADS:
            gone_ids = [d["thread_id"] for d in batch if d["_id"] not in present]
            ctx.sample[unit.key] = (ctx.sample.get(unit.key, []) + gone_ids)[:SAMPLE]
            await events.touched(unit.org_id, set(gone_ids))
        await ctx.renew()


def _unchanged(bucket: dict) -> dict[str, Any]:
    """A filter matching a day bucket only as archived: every counter as it was (a missing one
    still missing), so an `$inc` since makes a compare-and-delete miss."""
    return {"_id": bucket["_id"], **{c: bucket.get(c) for c in COUNTERS}}


def _month_of(doc: dict) -> datetime:
    return _month_start(from_ms(doc["period_start_ms"]))


async def _fold(ctx: Context, unit: RetentionUnit) -> None:
    """Fold archived day buckets: delete each one unchanged since it was archived
    (compare-and-delete on its counters), then write this run's month buckets from the
    deleted ones (a bucket changed meanwhile stays, and a later run folds it). Counted again
    from the archive on every attempt, so a resumed fold writes the same month buckets."""
    coll = DailyAnalytics.get_pymongo_collection()
    unit.deleted = unit.kept = 0
    sums: dict[tuple[str, str], dict[str, int]] = {}
    for batch in _batches(ctx.path(unit)):
        deletes = [DeleteOne(_unchanged(d)) for d in batch]
        await coll.bulk_write(deletes, ordered=False)
        present = await _present(coll, [d["_id"] for d in batch])
        for d in batch:
            if d["_id"] in present:
                unit.kept += 1
                continue
            unit.deleted += 1
            month = _month_of(d).strftime("%Y-%m")
            totals = sums.setdefault((d["user_id"], month), {**dict.fromkeys(COUNTERS, 0),
                                                              "days": 0})  # fmt: skip
            for c in COUNTERS:
                totals[c] += int(d.get(c, 0) or 0)
            totals["days"] += 1
        await ctx.renew()
    ops = []
    for (user_id, month), totals in sorted(sums.items()):
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
        analytics_id = f"month:{month}:{user_id}:{ctx.run.run_id}"
        doc = MonthlyAnalytics(
            org_id=unit.org_id, analytics_id=analytics_id, user_id=user_id, period_key=month,
            period_start=start, period_start_ms=to_ms(start), run_id=ctx.run.run_id, **totals,
        ).stamped()  # fmt: skip
        ops.append(ReplaceOne({"_id": doc.id}, doc.storage_fields(), upsert=True))
    for i in range(0, len(ops), BATCH):
        await MonthlyAnalytics.get_pymongo_collection().bulk_write(ops[i : i + BATCH])


async def _mark_archived(ctx: Context, unit: RetentionUnit) -> None:
    """Mark threads inactive past the archive period as archived (nothing is deleted);
    `archived` counts them."""
    coll = Thread.get_pymongo_collection()
    query = _selection(unit, ctx.cutoffs)
    named: list[str] = []
    while True:
        found = await coll.find(query, {"_id": 1, "thread_id": 1}).limit(BATCH).to_list()
        if not found:
            break
        now = now_ms()
        result = await coll.update_many(
            {**query, "_id": {"$in": [d["_id"] for d in found]}},
            {"$set": {**status_fields("archived", now), "updated_at_ms": now}},
        )
        unit.archived += result.modified_count
        named = (named + [d["thread_id"] for d in found])[:SAMPLE]
        await events.touched(unit.org_id, {d["thread_id"] for d in found})
        await ctx.save()
        if not result.modified_count:
            break  # they changed meanwhile and no longer match
    await ctx.mark(unit, "done")
    if unit.archived:
        await _record(
            ctx.run.run_id, unit, "retention_archived",
            {"threads": unit.archived, "thread_ids": named,
             "inactive_since_before": from_ms(unit.cutoff_ms).isoformat()},
        )  # fmt: skip
    ctx.say(f"  {unit.org_id} {unit.collection}: marked {unit.archived} archived")


async def _audit(ctx: Context, unit: RetentionUnit) -> None:
    action = "retention_folded" if unit.action == "fold" else "retention_purged"
    await _record(
        ctx.run.run_id,
        unit,
        action,
        {
            "collection": unit.collection,
            "archived": unit.archived,
            "deleted": unit.deleted,
            "kept": unit.kept,
            "archive": str(ctx.path(unit)),
            "sha256": unit.sha256,
            "cutoff": from_ms(unit.cutoff_ms).isoformat(),
            **({"thread_ids": ctx.sample.get(unit.key, [])} if unit.collection == THREADS else {}),
        },
    )


async def _record(run_id: str, unit: RetentionUnit, action: str, meta: dict) -> None:
    """One audit entry per unit and run (a resumed run does not write it twice)."""
    model = MODELS[unit.collection]
    found = audit.entry(
        SYSTEM,
        action,
        audit.Resource(model.RESOURCE, None, unit.org_id),
        metadata={"run_id": run_id, **meta},
    )
    found.audit_id = f"{action}:{run_id}:{unit.collection}"
    found.id = doc_key(found.org_id, found.audit_id)
    with contextlib.suppress(DuplicateKeyError):
        await AuditLog.get_pymongo_collection().insert_one(found.storage_fields())


# -- archives kept for a while, then removed ---------------------------------------------------


async def expire_archives(settings: Settings, now: datetime, say: Say) -> list[str]:
    """Remove the archive files of runs completed more than the keep period ago (0: never)."""
    keep = settings.chatadmin_retention_archive_keep_days
    if not keep:
        return []
    removed = []
    limit = to_ms(now) - keep * DAY_MS
    query = {"status": "completed", "archive_removed_at_ms": 0, "finished_at_ms": {"$lt": limit}}
    async for run_ in RetentionRun.find(query):
        gone = archive.remove_run_dir(Path(run_.archive_dir) / run_.run_id)
        await RetentionRun.get_pymongo_collection().update_one(
            {"_id": run_.id}, {"$set": {"archive_removed_at_ms": now_ms()}}
        )
        if not gone:
            continue  # it wrote no file
        removed.append(run_.run_id)
        say(f"Removed the archive of run {run_.run_id} (kept {keep} days).")
        await audit.record(
            SYSTEM, "retention_archive_removed", audit.Resource(RetentionRun.RESOURCE, run_.run_id),
            metadata={"keep_days": keep, "archive": str(Path(run_.archive_dir) / run_.run_id)},
        )  # fmt: skip
    return removed


# -- restore -----------------------------------------------------------------------------------


@dataclass
class Restored:
    """What restoring one archive file did."""

    org_id: str
    collection: str
    file: str
    count: int
    restored: int = 0
    already: int = 0  # the same document (same `_id`) is stored
    conflicts: int = 0  # another document holds its unique key (e.g. a new thread, same id)


async def restore(path: Path, actor: audit.Actor | None = None) -> list[Restored]:
    """Put the documents of an archive (a run directory, its manifest, or one file) back;
    each file is verified against the manifest first, and documents already there are left
    alone, so restoring twice creates nothing new."""
    actor = actor or audit.Actor("system", "restore", via="cli")
    run_dir, relative = archive.find_run_dir(Path(path))
    manifest = archive.read_manifest(run_dir)
    units = [u for u in manifest.get("units", []) if relative in (None, u["file"])]
    if not units:
        raise ArchiveError(f"{path} is not listed in {run_dir / archive.MANIFEST}")
    for u in units:
        archive.verify(run_dir / u["file"], u["count"], u["sha256"], u["org_id"])
    rank = {name: i for i, name in enumerate(RESTORE_ORDER)}
    units.sort(key=lambda u: (u["org_id"], rank.get(u["collection"], 99), u["action"]))
    out = []
    for u in units:
        if u["collection"] not in MODELS:
            raise ArchiveError(f"unknown collection {u['collection']!r} in the manifest")
        done = Restored(u["org_id"], u["collection"], u["file"], u["count"])
        await _restore_file(run_dir / u["file"], MODELS[u["collection"]], done)
        if u["action"] == "fold":
            await _unfold(manifest["run_id"], u["org_id"], run_dir / u["file"])
        await audit.record(
            actor, "retention_restored",
            audit.Resource(MODELS[u["collection"]].RESOURCE, None, u["org_id"]),
            metadata={"run_id": manifest["run_id"], "collection": u["collection"],
                      "archive": str(run_dir / u["file"]), "count": done.count,
                      "restored": done.restored, "already": done.already,
                      "conflicts": done.conflicts},
        )  # fmt: skip
        out.append(done)
    return out


async def _restore_file(path: Path, model: type[TimestampedDocument], done: Restored) -> None:
    coll = model.get_pymongo_collection()
    for found in _batches(path):
        batch = [rekeyed(model, d) for d in found]  # archived before ids were keyed
        try:
            await coll.insert_many(batch, ordered=False)
            done.restored += len(batch)
            continue
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            failed = [batch[e["index"]]["_id"] for e in errors]
        present = await _present(coll, failed)
        done.restored += len(batch) - len(failed)
        done.already += len(present)
        done.conflicts += len(failed) - len(present)


async def _unfold(run_id: str, org_id: str, path: Path) -> None:
    """After day buckets came back: the run's month buckets keep only what could not (a day
    bucket made again since then holds its key), so every count is in one place only."""
    coll = DailyAnalytics.get_pymongo_collection()
    left: dict[tuple[str, str], list[dict]] = {}
    for found in _batches(path):
        batch = [rekeyed(DailyAnalytics, d) for d in found]
        present = await _present(coll, [d["_id"] for d in batch])
        for d in batch:
            if d["_id"] not in present:
                left.setdefault((d["user_id"], _month_of(d).strftime("%Y-%m")), []).append(d)
    months = MonthlyAnalytics.get_pymongo_collection()
    async for doc in months.find({"org_id": org_id, "run_id": run_id}):
        rest = left.get((doc["user_id"], doc["period_key"]), [])
        if not rest:
            await months.delete_one({"_id": doc["_id"]})
            continue
        totals = {c: sum(int(d.get(c, 0) or 0) for d in rest) for c in COUNTERS}
        await months.update_one({"_id": doc["_id"]}, {"$set": {**totals, "days": len(rest)}})


# -- reading -----------------------------------------------------------------------------------


async def last_runs(limit: int = 20) -> list[RetentionRun]:
    """The newest runs first."""
    return await RetentionRun.find({}).sort([("started_at_ms", -1)]).limit(limit).to_list()


WHAT = {
    ("chat_sessions", "purge"): "threads to purge",
    ("chat_messages", "purge"): "messages to purge with their threads",
    ("shared_threads", "purge"): "shares to purge with their threads",
    ("chat_sessions", "archive_status"): "threads to mark archived",
    ("chat_contexts", "purge"): "contexts to purge",
    ("connections", "purge"): "connections to purge",
    ("chat_analytics", "purge"): "day buckets to purge",
    ("chat_analytics_months", "purge"): "month buckets to purge",
    ("chat_analytics", "fold"): "day buckets to fold into month buckets",
}


def _unit_line(unit: RetentionUnit, count: int) -> str:
    before = from_ms(unit.cutoff_ms).strftime("%Y-%m-%d %H:%M")
    return f"  {unit.collection}: {count} {WHAT[(unit.collection, unit.action)]} (before {before})"


def describe_plan(found: Plan) -> list[str]:
    """The dry run's report: per org and collection, what would go."""
    lines = [f"Dry run at {found.now.isoformat()}: nothing is written or deleted."]
    if found.unfinished is not None:
        lines.append(f"Unfinished run {found.unfinished.run_id} would be resumed first.")
    orgs: dict[str, list[RetentionUnit]] = {}
    for unit in found.units:
        orgs.setdefault(unit.org_id, []).append(unit)
    for org, units in orgs.items():
        lines.append(org)
        lines += [_unit_line(u, u.planned) for u in units]
    if not orgs:
        lines.append("Nothing is past the retention policy.")
    return lines


def describe_run(done: RetentionRun) -> list[str]:
    """A finished run's report."""
    lines = [f"Run {done.run_id}: {done.status}; archive {Path(done.archive_dir) / done.run_id}"]
    for unit in done.units:
        count = unit.archived if unit.action == "archive_status" else unit.deleted
        verb = {"archive_status": "marked archived", "fold": "folded"}.get(unit.action, "deleted")
        lines.append(
            f"  {unit.org_id} {unit.collection}: {verb} {count}"
            + (f" (archived {unit.archived}, kept {unit.kept})" if unit.file else "")
        )
    if not done.units:
        lines.append("  nothing was past the retention policy")
    return lines
