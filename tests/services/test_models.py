"""Models: string ids, tenant-scoped unique indexes, content blocks, UTC timestamps."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError
from pymongo.errors import DuplicateKeyError

from chatadmin.models import (
    DOCUMENT_MODELS,
    AdminUser,
    Analysis,
    ApiKey,
    Execution,
    Message,
    SharedThread,
    Thread,
    User,
)
from chatadmin.models.blocks import BLOCK_TYPES, BlockList, render_text

pytestmark = pytest.mark.usefixtures("database")


def test_every_collection_of_the_spec_has_a_model():
    names = {m.Settings.name for m in DOCUMENT_MODELS}
    assert names == {
        "users", "chat_sessions", "chat_messages", "analyses", "executions", "saved_analyses",
        "audit_logs", "cache", "shared_threads", "chat_contexts", "chat_analytics", "connections",
        "migrations", "admin_users", "api_keys", "retention_runs", "chat_analytics_months",
        "write_journal",
    }  # fmt: skip


def test_org_id_leads_every_compound_index():
    for model in DOCUMENT_MODELS:
        for ix in model.Settings.indexes:
            keys = [k for k, kind in ix.document["key"].items() if kind != "text"]
            # Text indexes stand alone: every text query also filters by org_id.
            if len(keys) > 1 and "org_id" in model.model_fields:
                assert keys[0] == "org_id", (model.Settings.name, keys)


def test_expiring_collections_declare_ttl_indexes():
    for name in ("cache", "chat_contexts", "connections", "shared_threads"):
        model = next(m for m in DOCUMENT_MODELS if m.Settings.name == name)
        ttl = [ix.document for ix in model.Settings.indexes if "expireAfterSeconds" in ix.document]
        assert [list(d["key"]) for d in ttl] == [["expires_at"]], name


async def test_ids_are_strings_and_generated_when_missing():
    t = Thread(org_id="o", user_id="u")
    await t.insert()
    raw = await Thread.get_pymongo_collection().find_one({"thread_id": t.thread_id})
    assert isinstance(raw["_id"], str) and len(t.thread_id) == 32


@pytest.mark.parametrize(
    "make",
    [
        lambda: User(org_id="o", user_id="same", email_key="a"),
        lambda: Message(org_id="o", thread_id="t", message_id="same", seq=0, role="user"),
        lambda: Analysis(org_id="o", analysis_id="same", title="x"),
        lambda: Execution(org_id="o", execution_id="same"),
        lambda: AdminUser(username="same", password_hash="h", role="admin"),
        lambda: ApiKey(key_id="samesame", org_id="o", key_hash="h", scopes=["read"]),
        lambda: SharedThread(org_id="o", share_id="s" * 20, thread_id="t", snapshot={}),
    ],
)
async def test_unique_constraints_raise(make):
    await make().insert()
    second = make()
    if isinstance(second, Message):
        second.seq = 1  # only the message_id repeats
    with pytest.raises(DuplicateKeyError):
        await second.insert()


async def test_message_seq_is_unique_per_thread():
    await Message(org_id="o", thread_id="t", message_id="m1", seq=0, role="user").insert()
    with pytest.raises(DuplicateKeyError):
        await Message(org_id="o", thread_id="t", message_id="m2", seq=0, role="user").insert()
    await Message(org_id="o", thread_id="t2", message_id="m3", seq=0, role="user").insert()


def test_client_ids_refuse_operators_and_oversize():
    for bad in ["$where", "", "a" * 200, "has space", {"$ne": 1}, "../x"]:
        with pytest.raises(ValidationError):
            Thread(org_id="o", user_id="u", thread_id=bad)
    assert Thread(org_id="o", user_id="u", thread_id="ok-1_2.3:4@x").thread_id == "ok-1_2.3:4@x"


def test_block_union_covers_every_type_and_refuses_unknown():
    blocks = BlockList.validate_python([
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": "t1", "name": "search", "input": {"q": "x"}},
        {"type": "tool_result", "tool_use_id": "t1", "content": "ok", "is_error": False},
        {"type": "citation", "cited_text": "quote", "url": "https://example.org"},
        {"type": "image_ref", "url": "s3://bucket/img.png", "alt_text": "chart"},
        {"type": "structured_data", "name": "table", "data": {"rows": [[1, 2]]}},
    ])  # fmt: skip
    assert [b.type for b in blocks] == list(BLOCK_TYPES)
    assert "[tool_use search]" in render_text(blocks) and "quote" in render_text(blocks)
    with pytest.raises(ValidationError):
        BlockList.validate_python([{"type": "video", "url": "x"}])
    with pytest.raises(ValidationError):
        BlockList.validate_python([{"type": "tool_use", "id": "t", "name": "n", "extra": 1}])


async def test_timestamps_are_aware_utc_millisecond_values():
    local = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    t = Thread(org_id="o", user_id="u", created_at=local)
    assert t.created_at == datetime(2026, 1, 2, 1, 4, 5, 678000, tzinfo=UTC)
    await t.insert()
    stored = await Thread.find_one({"thread_id": t.thread_id})
    assert stored.created_at == t.created_at and stored.created_at.tzinfo is not None
    assert stored.created_at_ms == int(t.created_at.timestamp() * 1000)
    assert stored.updated_at == stored.created_at
