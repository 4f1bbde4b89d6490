"""`manage.py rollup`, `retention` and `restore` end to end, in subprocesses (`runner`)."""

from __future__ import annotations

import re
import time

import pytest
from pymongo import MongoClient

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def mongo(settings, runner):
    """A sync pymongo handle on the runner's database."""
    with MongoClient(settings.mongodb_uri) as client:
        yield client[runner.db_name]


def ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def clean_error(result, needle: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr and needle in result.stderr, result.stderr


def test_rollup_check_detects_a_difference_and_rollup_repairs_it(runner, mongo):
    ok(runner("seed", "--threads", "3", "--no-progress"))
    first = ok(runner("rollup", "--check"))
    assert re.search(r"^acme: \d+ buckets checked, all match", first, re.M)
    bucket = mongo.chat_analytics.find_one(
        {"org_id": "acme", "user_id": "*", "messages": {"$gt": 0}}
    )
    mongo.chat_analytics.update_one({"_id": bucket["_id"]}, {"$inc": {"messages": 3}})
    checked = runner("rollup", "--check", "--org", "acme")
    clean_error(checked, "1 bucket(s) differ")
    assert f"day:{bucket['period_key']}:*: messages {bucket['messages'] + 3} -> " in checked.stdout
    fixed = ok(runner("rollup", "--org", "acme"))
    assert "1 rewritten" in fixed
    assert mongo.chat_analytics.find_one({"_id": bucket["_id"]})["messages"] == bucket["messages"]
    assert "all match" in ok(runner("rollup", "--check", "--since", "2020-01-01"))
    clean_error(runner("rollup", "--since", "last tuesday"), "is not an ISO date")


def test_retention_dry_run_then_run_then_restore_twice(runner, mongo, tmp_path):
    ok(runner("seed", "--threads", "3", "--no-progress"))
    old = int(time.time() * 1000) - 800 * DAY_MS
    thread = mongo.chat_sessions.find_one({"org_id": "acme"})
    mongo.chat_sessions.update_one(
        {"_id": thread["_id"]}, {"$set": {"last_activity_ms": old, "created_at_ms": old}}
    )
    count = mongo.chat_messages.count_documents({"thread_id": thread["thread_id"]})
    assert count > 0
    total = mongo.chat_messages.count_documents({})
    env = {"CHATADMIN_RETENTION_ARCHIVE_DIR": str(tmp_path / "cold")}

    dry = ok(runner("retention", "--dry-run", env=env))
    assert dry.startswith("Dry run at") and "\nacme\n" in dry
    assert "  chat_sessions: 1 threads to purge" in dry
    assert f"  chat_messages: {count} messages to purge with their threads" in dry
    assert mongo.chat_messages.count_documents({}) == total
    assert mongo.retention_runs.count_documents({}) == 0

    done = ok(runner("retention", env=env))
    run_id = re.search(r"^Run (\S+): completed", done, re.M).group(1)
    assert f"  acme chat_messages: deleted {count} (archived {count}, kept 0)" in done
    assert mongo.chat_messages.count_documents({}) == total - count
    assert mongo.audit_logs.count_documents({"action": "retention_purged"}) >= 2
    run_dir = tmp_path / "cold" / run_id
    assert (run_dir / "manifest.json").exists()

    restored = ok(runner("restore", str(run_dir), env=env))
    assert f"acme chat_messages: restored {count} of {count} (0 already there" in restored
    assert mongo.chat_messages.count_documents({}) == total
    again = ok(runner("restore", str(run_dir / "acme" / "chat_messages.jsonl.gz"), env=env))
    assert f"restored 0 of {count} ({count} already there, 0 conflicting)" in again
    assert mongo.chat_messages.count_documents({}) == total
    clean_error(runner("restore", str(tmp_path / "missing"), env=env), "does not exist")
