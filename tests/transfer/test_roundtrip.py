"""Native export, then import into an empty org, gives the same documents: threads, messages
(every block type, metadata with `$` and `.` keys, AI metadata, errors, analyses, feedback),
users, their counters and the day buckets; exporting the copy gives the same file again."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest

from chatadmin.models import DailyAnalytics, Message, Thread, User
from chatadmin.services import messages, threads
from chatadmin.transfer import export
from tests.factories import make_user
from tests.transfer.conftest import run_import

pytestmark = pytest.mark.usefixtures("database")

DAY = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
IGNORED = {"_id", "org_id", "updated_at_ms", "ingest_hash"}
NOT_KEPT = {
    "thread": {"archived_at_ms"},  # the move to archived is not an ingest field: its time is new
    "user": {"created_at", "created_at_ms"},  # users carry no creation time in ingest events
    "message": set(),
}


async def rich_org(org: str = "org-a") -> None:
    """An org with one of everything a conversation can hold, written through the services."""
    await make_user(org, "u1", email="U1@Example.com", display_name="U One", role="owner",
                    preferences={"theme": "dark"}, metadata={"$plan": {"a.b": 1}},
                    last_login=DAY)  # fmt: skip
    await make_user(org, "u2")
    await threads.create_thread(org, "u1", thread_id="t1", title="Volatility <b>", description="d",
                                tags=["x", "y"], is_pinned=True, metadata={"k.dot": {"$op": 1}},
                                created_at=DAY)  # fmt: skip
    say = messages.append_message
    await say(org, "t1", role="system", content="You are terse.", created_at=DAY)
    await say(org, "t1", role="user", user_id="u1", content="AAPL volatility?", created_at=DAY,
              question_context={"original_question": "AAPL volatility?", "query_type": "complete",
                                "expansion_confidence": 0.5})  # fmt: skip
    await say(org, "t1", role="assistant", created_at=DAY, content=[
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "prices",
         "input": {"$sym": "AAPL", "a.b": [1, None]}},
        {"type": "citation", "cited_text": "sigma = 0.2", "title": "Report",
         "url": "https://x.test", "location": {"page": 3}},
        {"type": "image_ref", "url": "https://x.test/c.png", "media_type": "image/png",
         "width": 10, "height": 5},
        {"type": "structured_data", "name": "table", "columns": ["a"],
         "data": {"rows": [[1], [2]]}},
    ], ai_metadata={"model": "m-1", "input_tokens": 3, "output_tokens": 5, "response_ms": 120,
                    "temperature": 0.2, "confidence": 0.9, "sources": ["s1"]},
        references=[{"kind": "report", "ref_id": "r1", "label": "R1"}],
        metadata={"$k": [1, {"a.b": None}], "nested": {"deep": True}})  # fmt: skip
    await say(org, "t1", role="tool", created_at=DAY, content=[
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {"type": "text", "text": "0.2"}, {"type": "image_ref", "url": "https://x.test/p.png"}]},
    ])  # fmt: skip
    answer = await say(org, "t1", role="assistant", created_at=DAY, content="sigma is 0.2.",
                       analysis_id="an-1", execution_id="ex-1", execution_status="success",
                       analysis={"analysis_id": "an-1", "title": "Vol", "parameters": {"$w": 30},
                                 "result": {"body": [{"key": "sigma", "value": 0.2}]}})  # fmt: skip
    await messages.set_feedback(org, answer.message_id, is_helpful=True, rating=4, comment="ok")
    await say(org, "t1", role="assistant", content="failed", status="error", created_at=DAY,
              error={"code": "timeout", "message": "too slow", "retry_count": 2})  # fmt: skip
    await threads.create_thread(org, "u2", thread_id="t2", title="Archived")
    await say(org, "t2", role="user", user_id="u2", content="hello")
    await threads.archive(org, "t2")


def comparable(doc: dict, kind: str) -> dict:
    out = {k: v for k, v in doc.items() if k not in IGNORED | NOT_KEPT[kind]}
    if out.get("feedback"):
        out["feedback"] = {k: v for k, v in out["feedback"].items() if k != "submitted_at_ms"}
    return out


async def documents(org: str) -> dict:
    """An org's documents by kind and client id, without what a copy may not share."""
    out = {}
    for kind, model, key in (("thread", Thread, "thread_id"), ("message", Message, "message_id"),
                             ("user", User, "user_id")):  # fmt: skip
        docs = await model.get_pymongo_collection().find({"org_id": org}).to_list()
        out[kind] = {d[key]: comparable(d, kind) for d in docs}
    buckets = await DailyAnalytics.get_pymongo_collection().find({"org_id": org}).to_list()
    out["day"] = {
        (b["user_id"], b["period_key"]): {
            k: v for k, v in b.items()
            if k not in IGNORED | {"analytics_id", "created_at", "created_at_ms"}
        }
        for b in buckets
    }  # fmt: skip
    return out


def lines(path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("name", ["export.jsonl", "export.jsonl.gz"])
async def test_native_export_then_import_gives_the_same_documents(tmp_path, name):
    await rich_org("org-a")
    path = tmp_path / name
    done = await export("org-a", path)
    assert (done.threads, done.messages, done.users) == (2, 7, 2)
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    records = lines(path)
    assert records[0]["chatadmin"] == "native" and records[0]["org_id"] == "org-a"
    assert {r["type"] for r in records[1:]} == {"user", "thread", "message", "feedback"}

    summary = await run_import(path, org="org-b")
    assert summary.errors == [] and summary.detected and summary.format == "native"
    assert (summary.threads["created"], summary.messages["created"]) == (2, 7)
    original, copy = await documents("org-a"), await documents("org-b")
    for kind in ("thread", "message", "user", "day"):
        assert copy[kind] == original[kind], kind

    again = await run_import(path, org="org-b")
    assert again.messages["unchanged"] == 7 and again.threads["unchanged"] == 2
    assert again.messages["created"] == again.messages["updated"] == 0

    second = tmp_path / ("second-" + name)
    await export("org-b", second)
    assert lines(second)[1:] == records[1:]  # the copy exports to the same file


async def test_deleted_messages_and_threads_are_not_exported(tmp_path):
    await rich_org("org-a")
    hidden = (await messages.list_messages("org-a", "t1")).items[1]
    await messages.soft_delete("org-a", hidden.message_id)
    await threads.soft_delete("org-a", "t2")
    path = tmp_path / "e.jsonl"
    done = await export("org-a", path)
    ids = {r["id"] for r in lines(path)[1:]}
    assert done.threads == 1 and "t2" not in ids and hidden.message_id not in ids
    assert done.messages == 5


async def test_thread_and_since_filters(tmp_path):
    await rich_org("org-a")
    path = tmp_path / "one.jsonl"
    done = await export("org-a", path, thread_id="t2")
    assert done.threads == 1 and {r["data"].get("thread_id") for r in lines(path)[1:]
                                   if r["type"] == "message"} == {"t2"}  # fmt: skip
    future = await export("org-a", tmp_path / "none.jsonl", since=datetime(2999, 1, 1, tzinfo=UTC))
    assert future.threads == 0
    recent = await export(
        "org-a", tmp_path / "recent.jsonl", since=datetime(2024, 6, 1, tzinfo=UTC)
    )
    assert recent.threads == 1  # t1's activity is on DAY; t2 is new
