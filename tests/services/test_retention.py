"""Retention: the dry run deletes nothing; a run archives (gzip JSONL, verified against its
manifest) before it deletes exactly what the policy expires, per org and collection; a corrupt
archive stops the delete; a run stopped half-way resumes without losing or duplicating; restore
brings everything back (twice = once); folding day buckets into months keeps the totals."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from chatadmin.clock import to_ms, utcnow
from chatadmin.models import (
    AuditLog,
    ChatContext,
    Connection,
    DailyAnalytics,
    Message,
    SharedThread,
    Thread,
    User,
)
from chatadmin.models.base import doc_key
from chatadmin.models.retention import MonthlyAnalytics, RetentionRun
from chatadmin.services import analytics, archive, contexts, messages, retention, rollup, shares
from chatadmin.services.archive import ArchiveError
from tests.factories import make_thread

pytestmark = pytest.mark.usefixtures("database")

NOW = utcnow()
COLLECTIONS = (Thread, Message, SharedThread, ChatContext, Connection, DailyAnalytics,
               MonthlyAnalytics)  # fmt: skip


def ago(days: float):
    return NOW - timedelta(days=days)


@pytest.fixture
def conf(settings, tmp_path):
    """The test settings with an archive directory of this test's own."""
    return settings.model_copy(update={"chatadmin_retention_archive_dir": tmp_path / "archive"})


async def _thread(org: str, tid: str, days: float, *message_days: float, user: str = "u1"):
    thread = await make_thread(org, user, tid, created_at=ago(days))
    for i, d in enumerate(message_days or (days,)):
        await messages.append_message(
            org, tid, role="user" if i % 2 == 0 else "assistant", user_id=user,
            content=f"{tid} message {i}", created_at=ago(d),
            ai_metadata=None if i % 2 == 0 else {"total_tokens": 10, "response_ms": 5},
        )  # fmt: skip
    return thread


async def _world() -> None:
    """Two orgs with something of every age in every collection the policy covers."""
    for org in ("acme", "globex"):
        await _thread(org, f"{org}-old", 800, 800, 799.9, 799.8)  # purged (2 years)
        await _thread(org, f"{org}-fresh", 5, 5, 4)
    await _thread("acme", "acme-mid", 400, 400, 399)  # marked archived (1 year)
    await _thread("acme", "acme-long", 900, 900, 10)  # old messages, recent activity: stays
    await _thread("acme", "acme-gone", 900, 900)
    await make_thread("acme", "u2", "acme-empty", created_at=ago(750))  # no messages: purged
    await messages.soft_delete(
        "acme", (await Message.find_one({"thread_id": "acme-gone"})).message_id
    )
    from chatadmin.services import threads

    await threads.soft_delete("acme", "acme-gone")
    await shares.create_share("acme", "acme-old")
    await shares.create_share("acme", "acme-fresh")
    for org in ("acme", "globex"):
        for cid in ("ctx-old", "ctx-new"):
            await contexts.upsert_context(org, f"{org}-{cid}", thread_id=f"{org}-fresh")
        await ChatContext.get_pymongo_collection().update_one(
            {"context_id": f"{org}-ctx-old"}, {"$set": {"updated_at_ms": to_ms(ago(100))}}
        )
        for cid, days in (("conn-old", 100), ("conn-new", 1)):
            expires = ago(-30)  # nx-27017 hides expired documents from every read
            await Connection(
                org_id=org, connection_id=f"{org}-{cid}", user_id="u1", created_at=ago(days),
                connected_at=ago(days), expires_at=expires, expires_at_ms=to_ms(expires),
            ).insert()  # fmt: skip
        await analytics.record(org, "u1", ago(6 * 365 + 40), messages=3)  # past 5 years


async def _raw(model, org: str | None = None) -> dict:
    query = {"org_id": org} if org else {}
    return {d["_id"]: d async for d in model.get_pymongo_collection().find(query)}


async def _snapshot() -> dict:
    return {m.Settings.name: await _raw(m) for m in COLLECTIONS}


def _ids(docs: dict, field: str) -> set:
    return {d[field] for d in docs.values()}


async def test_the_dry_run_lists_per_org_and_collection_and_deletes_nothing(conf):
    await _world()
    before = await _snapshot()
    found = await retention.plan(conf, NOW)
    by = {(u.org_id, u.collection, u.action): u.planned for u in found.units}
    assert by[("acme", "chat_sessions", "purge")] == 3  # old, gone, empty
    assert by[("acme", "chat_messages", "purge")] == 4
    assert by[("acme", "shared_threads", "purge")] == 1
    assert by[("acme", "chat_sessions", "archive_status")] == 1
    assert by[("globex", "chat_sessions", "purge")] == 1
    assert by[("globex", "chat_messages", "purge")] == 3
    assert ("globex", "shared_threads", "purge") in by  # kept with its threads, even at 0
    for org in ("acme", "globex"):
        assert by[(org, "chat_contexts", "purge")] == 1
        assert by[(org, "connections", "purge")] == 1
        assert by[(org, "chat_analytics", "purge")] == 2  # the org's and u1's bucket
        assert by[(org, "chat_analytics", "fold")] > 0
    lines = retention.describe_plan(found)
    assert lines[0].startswith("Dry run at") and "acme" in lines and "globex" in lines
    assert "  chat_sessions: 3 threads to purge" in "\n".join(lines)
    assert await _snapshot() == before
    assert await RetentionRun.find({}).count() == 0
    assert not (conf.chatadmin_retention_archive_dir).exists()


async def test_a_run_archives_then_deletes_exactly_what_expired_in_each_org(conf):
    await _world()
    before = await _snapshot()
    lines: list[str] = []
    done = await retention.run(conf, NOW, say=lines.append)
    assert done.status == "completed" and done.slot == done.run_id
    assert all(u.state == "done" for u in done.units)
    after = await _snapshot()

    gone_threads = {"acme-old", "acme-gone", "acme-empty", "globex-old"}
    assert _ids(after["chat_sessions"], "thread_id") == (
        _ids(before["chat_sessions"], "thread_id") - gone_threads
    )
    kept_messages = {k for k, d in before["chat_messages"].items()
                     if d["thread_id"] not in gone_threads}  # fmt: skip
    assert set(after["chat_messages"]) == kept_messages
    assert any(
        d["thread_id"] == "acme-long" and d["created_at"] < ago(800)
        for d in after["chat_messages"].values()
    )  # a live thread keeps old messages
    assert _ids(after["shared_threads"], "thread_id") == {"acme-fresh"}
    assert _ids(after["chat_contexts"], "context_id") == {"acme-ctx-new", "globex-ctx-new"}
    assert _ids(after["connections"], "connection_id") == {"acme-conn-new", "globex-conn-new"}
    # Threads the run leaves keep every stored field, except the one it archived.
    for key, doc in after["chat_sessions"].items():
        if doc["thread_id"] == "acme-mid":
            assert doc["status"] == "archived" and doc["archived_at_ms"] > 0
        else:
            assert doc == before["chat_sessions"][key]
    # Day buckets: folded (or, past five years, purged); recent ones untouched.
    fold_cutoff = retention.cutoffs(done.policy, done.now_ms)["fold"]
    assert set(after["chat_analytics"]) == {
        k for k, d in before["chat_analytics"].items() if d["period_start_ms"] >= fold_cutoff
    }
    assert after["chat_analytics_months"]
    assert {d["org_id"] for d in after["chat_analytics_months"].values()} == {"acme", "globex"}

    # Every purge was archived first: one file per org and collection, as the manifest says.
    run_dir = Path(done.archive_dir) / done.run_id
    manifest = archive.read_manifest(run_dir)
    assert manifest["run_id"] == done.run_id
    for unit in manifest["units"]:
        path = run_dir / unit["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == unit["sha256"]
        docs = list(archive.read_lines(path))
        assert len(docs) == unit["count"] and {d["org_id"] for d in docs} <= {unit["org_id"]}
        gone = {d["_id"] for d in docs}
        model = retention.MODELS[unit["collection"]]
        assert not gone & set(after[model.Settings.name])
        for d in docs:  # stored exactly: dates stay dates
            assert d == before[model.Settings.name][d["_id"]]
    acme_messages = run_dir / "acme" / "chat_messages.jsonl.gz"
    with gzip.open(acme_messages, "rt") as f:
        first = json.loads(f.readline())
    assert first["created_at"]["$date"].endswith("Z")

    # Audited: one entry per org and unit, naming the archive and what it held.
    purged = await AuditLog.find({"action": "retention_purged"}).to_list()
    assert {(e.org_id, e.resource_type) for e in purged} >= {
        ("acme", "thread"), ("acme", "message"), ("acme", "share"), ("acme", "context"),
        ("acme", "connection"), ("acme", "analytics"), ("globex", "thread"),
    }  # fmt: skip
    entry = next(e for e in purged if e.org_id == "acme" and e.resource_type == "thread")
    assert entry.actor_type == "system" and entry.metadata["run_id"] == done.run_id
    assert entry.metadata["deleted"] == 3 and entry.metadata["sha256"]
    assert set(entry.metadata["thread_ids"]) == {"acme-old", "acme-gone", "acme-empty"}
    marked = await AuditLog.find_one({"action": "retention_archived", "org_id": "acme"})
    assert marked.metadata["thread_ids"] == ["acme-mid"]
    assert await AuditLog.find({"action": "retention_folded"}).count() == 2

    # Analytics outlive conversations: the rebuild leaves the purged days alone and agrees.
    for org in ("acme", "globex"):
        checked = await rollup.rebuild(org, check=True)
        assert checked.ok, checked.differences
        assert checked.protected_until is not None
    # The users' counters count what they did, purged or not.
    assert (await User.find_one({"org_id": "acme", "user_id": "u1"})).thread_count == 5

    # A second run finds nothing more to do.
    again = await retention.run(conf, NOW)
    assert again.run_id != done.run_id and again.units == []
    assert await _snapshot() == after


async def test_folding_days_into_months_keeps_the_totals(conf):
    old = ago(800).replace(day=2, hour=9)  # the three days below share one month
    for hours in (0, 30, 200):
        await analytics.record("acme", "u1", old + timedelta(hours=hours), messages=2,
                               tokens_total=7, feedback_count=1)  # fmt: skip
    await analytics.record("acme", "u2", old, messages=5)
    await analytics.record("acme", "u1", ago(3), messages=1)
    month = await rollup.month_summary("acme", old)
    user_month = await rollup.month_summary("acme", old, user_id="u1")
    assert month.messages == 11 and not month.folded
    done = await retention.run(conf, NOW)
    assert await DailyAnalytics.find({"org_id": "acme", "period_start_ms": {
        "$lt": to_ms(ago(400))}}).count() == 0  # fmt: skip
    folded = await rollup.month_summary("acme", old)
    assert folded.folded and folded.model_dump(exclude={"folded"}) == month.model_dump(
        exclude={"folded"}
    )
    assert (await rollup.month_summary("acme", old, user_id="u1")).messages == user_month.messages
    assert (await rollup.week_summary("acme", old)).folded
    months = await MonthlyAnalytics.find({"org_id": "acme"}).to_list()
    assert {(m.user_id, m.period_key) for m in months} >= {("*", old.strftime("%Y-%m"))}
    assert all(m.run_id == done.run_id and m.id == doc_key("acme", m.analytics_id) for m in months)

    # Five years on, the month buckets go too (archived first).
    later = await retention.run(conf, NOW + timedelta(days=5 * 366))
    purged = [u for u in later.units if u.collection == "chat_analytics_months"]
    assert purged and purged[0].deleted == len(months)
    # What is left was folded by that run from the recent days, whose month is not yet due.
    left = await MonthlyAnalytics.find({}).to_list()
    assert all(m.run_id == later.run_id for m in left)
    assert old.strftime("%Y-%m") not in {m.period_key for m in left}


async def test_a_corrupt_archive_stops_the_delete_and_the_next_run_archives_again(
    conf, monkeypatch
):
    await _world()
    before = await _snapshot()
    real_verify = archive.verify

    def crash(*args, **kwargs):
        raise RuntimeError("stopped after archiving")

    monkeypatch.setattr(archive, "verify", crash)
    with pytest.raises(retention.RetentionError, match="stopped after archiving"):
        await retention.run(conf, NOW)
    monkeypatch.setattr(archive, "verify", real_verify)
    stopped = await RetentionRun.find_one({})
    assert stopped.status == "failed" and stopped.lease_until_ms == 0
    first = next(u for u in stopped.units if u.collection == "chat_sessions")
    assert first.state == "archived" and first.archived == 3
    path = Path(stopped.archive_dir) / stopped.run_id / first.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(ArchiveError):
        await retention.run(conf, NOW)
    assert await _snapshot() == before  # nothing deleted
    failed = await RetentionRun.find_one({})
    assert failed.status == "failed" and "verification failed" in failed.units[0].error
    assert await AuditLog.find({"action": "retention_purged"}).count() == 0

    done = await retention.run(conf, NOW)
    assert done.run_id == stopped.run_id and done.status == "completed" and done.resumed == 2
    assert not {"acme-old", "globex-old"} & _ids(await _raw(Thread), "thread_id")
    archive.verify(path, 3, next(u for u in done.units if u.file == first.file).sha256, "acme")


async def test_a_run_stopped_mid_delete_resumes_without_losing_or_duplicating(conf, monkeypatch):
    await _world()
    before = await _snapshot()
    monkeypatch.setattr(retention, "BATCH", 1)
    real_renew = retention.Context.renew
    calls = []

    async def crash_in_delete(self):
        deleting = [u for u in self.run.units if u.state == "deleting"]
        if deleting and deleting[0].collection == "chat_messages":
            calls.append(1)
            if len(calls) == 2:  # two messages deleted, then the process "dies"
                raise KeyboardInterrupt
        await real_renew(self)

    monkeypatch.setattr(retention.Context, "renew", crash_in_delete)
    with pytest.raises(KeyboardInterrupt):
        await retention.run(conf, NOW)
    monkeypatch.setattr(retention.Context, "renew", real_renew)
    stopped = await RetentionRun.find_one({})
    states = {(u.org_id, u.collection, u.action): u.state for u in stopped.units}
    assert states[("acme", "chat_sessions", "purge")] == "done"
    assert states[("acme", "chat_messages", "purge")] == "deleting"
    assert (
        len(await _raw(Message, "acme"))
        == len([d for d in before["chat_messages"].values() if d["org_id"] == "acme"]) - 2
    )

    done = await retention.run(conf, NOW)
    assert done.run_id == stopped.run_id and done.status == "completed"
    units = {(u.org_id, u.collection, u.action): u for u in done.units}
    assert units[("acme", "chat_messages", "purge")].deleted == 4  # counted whole, not 4 + 2
    assert units[("acme", "chat_messages", "purge")].archived == 4
    assert await AuditLog.find({"action": "retention_purged", "org_id": "acme",
                                "resource_type": "message"}).count() == 1  # fmt: skip
    gone = {"acme-old", "acme-gone", "acme-empty", "globex-old"}
    assert set(await _raw(Message)) == {
        k for k, d in before["chat_messages"].items() if d["thread_id"] not in gone
    }
    run_dir = Path(done.archive_dir) / done.run_id
    lines = list(archive.read_lines(run_dir / "acme" / "chat_messages.jsonl.gz"))
    assert len({d["_id"] for d in lines}) == len(lines) == 4


async def test_a_thread_active_again_after_archiving_is_kept_with_its_messages(conf, monkeypatch):
    await _world()
    real_verify = archive.verify

    def crash(*args, **kwargs):
        raise RuntimeError("stopped after archiving")

    monkeypatch.setattr(archive, "verify", crash)
    with pytest.raises(retention.RetentionError):
        await retention.run(conf, NOW)  # stopped after archiving, before any delete
    monkeypatch.setattr(archive, "verify", real_verify)
    await messages.append_message("acme", "acme-old", role="user", content="back again")
    await messages.append_message(
        "acme", "acme-empty", role="user", content="imported", created_at=ago(760)
    )  # backdated: the thread is still expired
    done = await retention.run(conf, NOW)
    units = {(u.org_id, u.collection, u.action): u for u in done.units}
    sessions, msgs = (
        units[("acme", "chat_sessions", "purge")],
        units[("acme", "chat_messages", "purge")],
    )
    assert (sessions.archived, sessions.deleted, sessions.kept) == (3, 1, 2)
    assert (msgs.archived, msgs.deleted, msgs.kept) == (4, 1, 3)  # acme-gone's message went
    thread = await Thread.find_one({"org_id": "acme", "thread_id": "acme-old"})
    assert thread.message_count == 4 and thread.status == "active"
    assert await Message.find({"thread_id": "acme-old"}).count() == 4
    assert await SharedThread.find({"thread_id": "acme-old"}).count() == 1
    # A message came (backdated) after the archive: kept, though its activity is still old.
    assert await Message.find({"thread_id": "acme-empty"}).count() == 1
    assert await Thread.find({"thread_id": "acme-empty"}).count() == 1


async def test_restore_brings_everything_back_and_twice_creates_nothing_new(conf):
    await _world()
    before = await _snapshot()
    done = await retention.run(conf, NOW)
    run_dir = Path(done.archive_dir) / done.run_id

    restored = await retention.restore(run_dir)
    assert sum(r.restored for r in restored) == sum(u.archived for u in done.units if u.file)
    assert all(r.already == r.conflicts == 0 for r in restored)
    after = await _snapshot()
    for name, docs in before.items():
        if name == "chat_sessions":
            docs = {k: d for k, d in docs.items() if d["thread_id"] != "acme-mid"}
            after[name] = {k: d for k, d in after[name].items() if d["thread_id"] != "acme-mid"}
        assert after[name] == docs, name  # month buckets are gone again: all days are back
    assert (await rollup.rebuild("acme", check=True)).ok

    again = await retention.restore(run_dir)
    assert sum(r.restored for r in again) == 0
    assert sum(r.already for r in again) == sum(r.restored for r in restored)
    assert await _snapshot() == {**after, "chat_sessions": await _raw(Thread)}
    assert await AuditLog.find({"action": "retention_restored"}).count() == 2 * len(restored)

    one = await retention.restore(run_dir / "globex" / "chat_messages.jsonl.gz")
    assert [(r.org_id, r.collection, r.already) for r in one] == [("globex", "chat_messages", 3)]


async def test_restore_refuses_an_archive_that_does_not_match_its_manifest(conf):
    await _world()
    done = await retention.run(conf, NOW)
    run_dir = Path(done.archive_dir) / done.run_id
    path = run_dir / "acme" / "chat_contexts.jsonl.gz"
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # a valid file, other content
        f.write(archive.dumps({"_id": "x", "org_id": "acme"}).encode() + b"\n")
    with pytest.raises(ArchiveError, match="sha256"):
        await retention.restore(run_dir)
    assert await ChatContext.find({"context_id": "acme-ctx-old"}).count() == 0
    with pytest.raises(ArchiveError, match="does not exist"):
        await retention.restore(run_dir / "nope.jsonl.gz")


async def test_a_second_process_is_refused_while_a_run_holds_its_lease(conf):
    await _world()
    await RetentionRun(run_id="other", now_ms=to_ms(NOW), archive_dir="/tmp/x", policy={},
                       lease_owner="elsewhere", lease_until_ms=to_ms(utcnow()) + 60_000,
                       started_at_ms=to_ms(NOW)).insert()  # fmt: skip
    with pytest.raises(retention.RetentionBusy, match="in progress"):
        await retention.run(conf, NOW)
    await RetentionRun.get_pymongo_collection().update_one(
        {"run_id": "other"}, {"$set": {"lease_until_ms": 0}}
    )
    taken = await retention.run(conf, NOW)  # a lapsed lease: resumed (it had nothing to do)
    assert taken.run_id == "other" and taken.status == "completed" and taken.resumed == 1


async def test_archives_are_removed_after_the_keep_period(conf):
    await _world()
    done = await retention.run(conf, NOW)
    run_dir = Path(done.archive_dir) / done.run_id
    assert run_dir.exists()
    second = await retention.run(conf, NOW + timedelta(days=10))
    assert run_dir.exists()
    await retention.run(conf, NOW + timedelta(days=31))
    assert not run_dir.exists()
    stored = await RetentionRun.find_one({"run_id": done.run_id})
    assert stored.archive_removed_at_ms > 0
    removed = await AuditLog.find({"action": "retention_archive_removed"}).to_list()
    wrote = {done.run_id} | ({second.run_id} if any(u.file for u in second.units) else set())
    assert {e.resource_id for e in removed} == wrote
    with pytest.raises(ArchiveError):
        await retention.restore(run_dir)


async def test_the_policy_is_configurable_per_collection(conf):
    await _world()
    custom = conf.model_copy(update={
        "chatadmin_retention_contexts_days": 0,  # kept forever
        "chatadmin_retention_connections_days": 0,
        "chatadmin_retention_conversations_days": 3,
        "chatadmin_retention_messages_days": 3,
        "chatadmin_retention_conversations_archive_days": 0,
        "chatadmin_retention_analytics_fold_days": 0,
        "chatadmin_retention_analytics_days": 0,
    })  # fmt: skip
    found = await retention.plan(custom, NOW)
    assert {u.collection for u in found.units} == {
        "chat_sessions", "chat_messages", "shared_threads"}  # fmt: skip
    threads = {u.org_id: u.planned for u in found.units if u.collection == "chat_sessions"}
    assert threads == {"acme": 6, "globex": 2}  # every thread inactive for 3 days or more
    rules = {r.setting: r.days for r in retention.rules(custom)}
    assert rules["CHATADMIN_RETENTION_CONTEXTS_DAYS"] == 0
    assert rules["CHATADMIN_RETENTION_CONVERSATIONS_DAYS"] == 3
