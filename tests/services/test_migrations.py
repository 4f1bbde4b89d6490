"""Migrations: every declared index exists after migrate, a second run is a no-op, drift shows."""

import pytest

from chatadmin import search
from chatadmin.indexes import declared_indexes, index_drift, signature_of_spec
from chatadmin.migrations import available, migrate, states
from chatadmin.models import DOCUMENT_MODELS, Message, MigrationRecord

pytestmark = pytest.mark.usefixtures("database")


async def test_every_declared_index_exists_after_migrate(database):
    for model in DOCUMENT_MODELS:
        present = {
            signature_of_spec(spec)
            for spec in (await database.db[model.Settings.name].index_information()).values()
        }
        for ix in declared_indexes(model):
            sig = signature_of_spec(ix.document)
            is_text = any(kind == "text" for _, kind in sig[0])
            if is_text and not database.info.lists_text_indexes:
                continue  # nx-27017 does not list text indexes; searched below instead
            assert sig in present, (model.Settings.name, ix.document["name"])


async def test_search_indexes_answer_searches(database):
    """The declared search indexes answer in the database's search mode (text indexes on
    nx-27017, which does not list them; the terms index where there is no text search)."""
    message = Message(org_id="o", thread_id="t", seq=0, role="user", text="quarterly volatility")
    await database.db["chat_messages"].insert_one(message.stamped().storage_fields())
    found = await database.db["chat_messages"].find(search.condition("volatility")).to_list()
    assert [d["_id"] for d in found] == [message.id]


async def test_search_mode_follows_the_server(database, server_kind):
    expected = search.TERMS if database.info.kind == "secantusdb" else search.TEXT
    assert database.search_mode == search.mode() == expected
    record = await MigrationRecord.find_one({"version": "0003"})
    assert record.changes[0] == f"search mode: {search.describe(expected)}"


async def test_migrate_twice_changes_nothing_the_second_time(database):
    before = await MigrationRecord.find_all().to_list()
    assert [r.version for r in before] == [v for v, _ in available()]
    assert all(r.status == "completed" for r in before)
    assert await migrate(database.db) == []
    after = await MigrationRecord.find_all().to_list()
    assert [(r.version, r.applied_at) for r in after] == [(r.version, r.applied_at) for r in before]
    assert before[0].changes and before[0].execution_ms >= 0
    assert {s.status for s in await states()} == {"completed"}


async def test_first_migration_recorded_its_changes(database):
    record = await MigrationRecord.find_one({"version": "0001"})
    assert any(c.startswith("created index chat_messages.") for c in record.changes)
    assert record.name == "initial collections and indexes"


async def test_index_drift_reports_missing_and_undeclared(database):
    from chatadmin.models import Message

    coll = database.db["chat_messages"]
    info = await coll.index_information()
    wanted = ["org_id", "thread_id", "seq"]
    seq_index = next(n for n, s in info.items() if [k for k, _ in s["key"]] == wanted)
    await coll.drop_index(seq_index)
    await coll.create_index([("role", 1)], name="surprise")
    try:
        drift = await index_drift(database.db, Message, database.info)
        assert not drift.ok
        assert drift.missing == ["[org_id, thread_id, seq] unique"]
        assert drift.extra == ["[role]"]
    finally:
        await coll.drop_index(next(n for n, s in (await coll.index_information()).items()
                                   if [k for k, _ in s["key"]] == ["role"]))  # fmt: skip
        await migrate_indexes_again(database)
    assert (await index_drift(database.db, Message, database.info)).ok


async def migrate_indexes_again(database):
    from chatadmin.indexes import ensure_indexes
    from chatadmin.models import Message

    changes = await ensure_indexes(database.db, Message)
    assert any("org_thread_seq_uq" in c for c in changes)


async def test_a_failed_migration_is_recorded_and_retried(database, monkeypatch):
    from pymongo.errors import OperationFailure

    from chatadmin import migrations
    from chatadmin.migrations import MigrationError

    class Broken:
        NAME = "broken on purpose"

        @staticmethod
        async def apply(db):
            raise OperationFailure("refused")

    monkeypatch.setattr(migrations, "available", lambda: [*available(), ("9999", Broken)])
    with pytest.raises(MigrationError):
        await migrate(database.db)
    record = await MigrationRecord.find_one({"version": "9999"})
    assert record.status == "failed" and "refused" in record.error
    assert [s.status for s in await states() if s.version == "9999"] == ["failed"]
    with pytest.raises(MigrationError):
        await migrate(database.db)  # retried, not skipped
    assert await MigrationRecord.find({"version": "9999"}).count() == 1
    await MigrationRecord.find({"version": "9999"}).delete()


async def _legacy(database) -> dict[str, dict]:
    """Give every keyed document a random `_id`, as before migration 0005; returns them by
    (collection, new random `_id`)."""
    from chatadmin.migrations.m0005_keyed_ids import keyed_models
    from chatadmin.models.base import new_id

    before = {}
    for model in keyed_models():
        coll = database.db[model.Settings.name]
        for doc in await coll.find({}).to_list():
            await coll.delete_one({"_id": doc["_id"]})
            doc["_id"] = new_id()
            await coll.insert_one(doc)
            before[(model.Settings.name, doc[model.RESOURCE_KEY])] = doc
    return before


async def _keyed_now(database) -> dict[tuple[str, str], dict]:
    from chatadmin.migrations.m0005_keyed_ids import keyed_models
    from chatadmin.models.base import doc_key

    now = {}
    for model in keyed_models():
        for doc in await database.db[model.Settings.name].find({}).to_list():
            assert doc["_id"] == doc_key(doc["org_id"], doc[model.RESOURCE_KEY]), doc["_id"]
            now[(model.Settings.name, doc[model.RESOURCE_KEY])] = doc
    return now


async def test_documents_written_before_keyed_ids_are_moved_without_loss(database):
    from chatadmin.migrations import m0005_keyed_ids as m0005
    from chatadmin.services import ingest
    from chatadmin.services.audit import Actor
    from tests.factories import make_messages, make_thread

    thread = await make_thread("acme", "u1", "t1", tags=["x"])
    await make_messages(thread, 3, ai_metadata={"total_tokens": 5, "response_ms": 7})
    await make_thread("globex", "u1", "t1")  # the same client ids in another org
    legacy = await _legacy(database)
    assert {name for name, _ in legacy} >= {"users", "chat_sessions", "chat_messages",
                                            "chat_analytics"}  # fmt: skip

    changes = await m0005.apply(database.db)
    assert "re-keyed 3 documents of chat_messages" in changes
    after = await _keyed_now(database)
    assert after.keys() == legacy.keys()  # nothing lost, nothing added
    for key, doc in legacy.items():
        assert {**doc, "_id": None} == {**after[key], "_id": None}, key
    assert await database.db[m0005.SIDE].count_documents({}) == 0
    assert await m0005.apply(database.db) == []  # nothing left to move

    # A retried event of a moved message is found by its new _id: unchanged, not a duplicate.
    stored = after[("chat_messages", next(k for n, k in after if n == "chat_messages"))]
    event = {"type": "message", "id": stored["message_id"],
             "data": {"thread_id": "t1", "role": "user", "content": "other"}}  # fmt: skip
    batch = ingest.Batch("acme", Actor("api_key", "k", via="ingest"))
    (result,) = await ingest.ingest(batch, [ingest.EventIn(**event)])
    assert result.status == "updated"
    assert await database.db["chat_messages"].count_documents({"org_id": "acme"}) == 3


async def test_a_move_stopped_half_way_is_finished_by_the_next_run(database):
    from chatadmin.migrations import m0005_keyed_ids as m0005
    from chatadmin.models import Message
    from chatadmin.models.base import rekeyed
    from tests.factories import make_messages, make_thread

    thread = await make_thread("acme", "u1", "t1")
    await make_messages(thread, 6)
    legacy = await _legacy(database)
    coll = database.db["chat_messages"]
    docs = await coll.find({}).sort("seq", 1).to_list()
    side = database.db[m0005.SIDE]
    for i, doc in enumerate(docs[:4]):  # saved aside; two of them also deleted already
        new = rekeyed(Message, doc)
        await side.insert_one({"_id": f"chat_messages|{doc['_id']}", "collection":
                               "chat_messages", "old_id": doc["_id"], "doc": new})  # fmt: skip
        if i < 2:
            await coll.delete_one({"_id": doc["_id"]})
    assert await coll.count_documents({}) == 4  # two are only in the side collection now

    changes = await m0005.apply(database.db)
    assert changes[0] == "finished 4 documents a stopped run had begun to move"
    after = await _keyed_now(database)
    assert after.keys() == legacy.keys()
    assert await coll.count_documents({}) == 6
    assert sorted(d["seq"] for d in await coll.find({}).to_list()) == list(range(6))
    assert await side.count_documents({}) == 0
