"""Pins of the MongoDB behaviour the product relies on (MONGO-COMPAT.md and docs/mongo-compat.md).

Each test asserts what real MongoDB does and what the product needs; they run against whichever
server the suite uses, so a change of either server shows up here as a red test.
"""

import asyncio
import re
import uuid
from datetime import datetime, timedelta

import pytest
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from chatadmin.clock import to_ms, utcnow
from chatadmin.models import DOCUMENT_MODELS, Message, Thread
from chatadmin.seed import seed
from chatadmin.services import threads

pytestmark = pytest.mark.usefixtures("database")
DATE_STRING = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?")


@pytest.fixture
def coll(database):
    return database.db[f"compat_{uuid.uuid4().hex[:8]}"]


async def test_insert_and_replace_keep_datetimes_as_dates(coll):
    now = utcnow()
    await coll.insert_one({"_id": "a", "at": now})
    assert (await coll.find_one({"_id": "a"}))["at"] == now
    await coll.replace_one({"_id": "a"}, {"at": now + timedelta(seconds=1)})
    assert isinstance((await coll.find_one({"_id": "a"}))["at"], datetime)


async def test_upsert_setoninsert_by_unique_key_keeps_string_id_and_dates(coll):
    """Rollups and user upserts rely on update_one upserts honouring $setOnInsert."""
    now = utcnow()
    for _ in range(2):
        await coll.update_one(
            {"k": "day1"},
            {"$inc": {"messages": 1}, "$setOnInsert": {"_id": "id-1", "day": now}},
            upsert=True,
        )
    doc = await coll.find_one({"k": "day1"})
    assert doc["_id"] == "id-1" and doc["messages"] == 2 and doc["day"] == now


async def test_bulk_upserts_with_flat_inc_count_every_write(coll):
    ops = [UpdateOne({"k": "b"}, {"$inc": {"n": 1, "t": 5}, "$setOnInsert": {"_id": "b"}},
                     upsert=True) for _ in range(3)]  # fmt: skip
    await coll.bulk_write(ops, ordered=False)
    doc = await coll.find_one({"k": "b"})
    assert (doc["n"], doc["t"]) == (3, 15)
    assert not any("." in key for key in doc)


async def test_concurrent_find_one_and_update_inc_hands_out_distinct_values(coll):
    await coll.insert_one({"_id": "seq", "next": 0})

    async def take():
        doc = await coll.find_one_and_update(
            {"_id": "seq"}, {"$inc": {"next": 1}}, return_document=ReturnDocument.AFTER
        )
        return doc["next"]

    values = await asyncio.gather(*[take() for _ in range(40)])
    assert sorted(values) == list(range(1, 41))


async def test_max_on_integers_only_raises(coll):
    await coll.insert_one({"_id": "m", "ms": 10})
    await coll.update_one({"_id": "m"}, {"$max": {"ms": 5}})
    assert (await coll.find_one({"_id": "m"}))["ms"] == 10
    await coll.update_one({"_id": "m"}, {"$max": {"ms": 20}})
    assert (await coll.find_one({"_id": "m"}))["ms"] == 20


async def test_boolean_set_by_update_still_matches_and_reads_back_as_bool():
    t = await threads.create_thread("org-a", "u1")
    await threads.pin("org-a", t.thread_id, True)
    found = await Thread.find_one({"org_id": "org-a", "is_pinned": True})
    assert found is not None and found.is_pinned is True
    await threads.pin("org-a", t.thread_id, False)
    assert await Thread.find_one({"org_id": "org-a", "is_pinned": True}) is None
    again = await threads.get_thread("org-a", t.thread_id)
    assert again.is_pinned is False and type(again.is_pinned) is bool


async def test_in_matches_array_members(coll):
    await coll.insert_many([{"_id": 1, "tags": ["a", "b"]}, {"_id": 2, "tags": ["c"]}])
    found = [d["_id"] async for d in coll.find({"tags": {"$in": ["b"]}})]
    assert found == [1]


async def test_escaped_case_insensitive_regex_treats_input_as_text(coll):
    await coll.insert_many([{"_id": 1, "s": "Price (USD)?"}, {"_id": 2, "s": "price usd"}])
    pattern = re.escape("(usd)?")
    found = [d["_id"] async for d in coll.find({"s": {"$regex": pattern, "$options": "i"}})]
    assert found == [1]


async def test_keyset_pagination_with_or_on_ties(coll):
    await coll.insert_many([{"_id": f"k{i}", "ms": 100 + i // 3} for i in range(9)])
    query = {"$or": [{"ms": {"$lt": 101}}, {"ms": 101, "_id": {"$lt": "k4"}}]}
    found = [d["_id"] async for d in coll.find(query).sort([("ms", -1), ("_id", -1)])]
    assert found == ["k3", "k2", "k1", "k0"]


async def test_epoch_ms_comparisons_are_exact_to_the_millisecond(coll):
    base = to_ms(utcnow())
    await coll.insert_many([{"_id": i, "ms": base + i} for i in range(3)])
    found = [d["_id"] async for d in coll.find({"ms": {"$gt": base}}).sort("ms", 1)]
    assert found == [1, 2]


async def test_compound_unique_index_scoped_by_org(database):
    await threads.create_thread("org-a", "u1", thread_id="same")
    await threads.create_thread("org-b", "u1", thread_id="same")
    with pytest.raises(DuplicateKeyError):
        await Thread(org_id="org-a", user_id="u2", thread_id="same").insert()


async def test_add_to_set_of_subdocuments_keeps_them_documents(coll):
    """Thread notes rely on this; nx-27017's $push would turn them into JSON strings."""
    await coll.insert_one({"_id": "t", "notes": []})
    for i in range(3):
        await coll.update_one({"_id": "t"}, {"$addToSet": {"notes": {"id": i, "text": f"n{i}"}}})
    notes = (await coll.find_one({"_id": "t"}))["notes"]
    assert notes == [{"id": 0, "text": "n0"}, {"id": 1, "text": "n1"}, {"id": 2, "text": "n2"}]


async def test_text_search_with_tenant_filter(database):
    coll = database.db["analyses"]
    await coll.insert_many([
        {"_id": "1", "org_id": "a", "title": "AAPL volatility", "description": "30 days"},
        {"_id": "2", "org_id": "b", "title": "NVDA volatility", "description": "7 days"},
        {"_id": "3", "org_id": "a", "title": "Rates", "description": "bond yields"},
    ])  # fmt: skip
    found = [d["_id"] async for d in coll.find({"org_id": "a", "$text": {"$search": "volatility"}})]
    assert found == ["1"]


async def test_every_stored_datetime_is_a_bson_date_after_a_full_workflow(database):
    """Update operators never carry datetimes; this scans what a realistic workload stored."""
    await seed(6)
    await _touch_everything_else()
    checked = 0
    for model in DOCUMENT_MODELS:
        async for doc in database.db[model.Settings.name].find():
            for path, value in _walk(doc):
                leaf = path.rsplit(".", 1)[-1]
                if leaf.endswith("_at") or leaf in ("period_start",):
                    assert value is None or isinstance(value, datetime), (model, path, value)
                    checked += 1
                looks_like_date = isinstance(value, str) and DATE_STRING.fullmatch(value)
                assert not looks_like_date, (model, path, value)
            for note in doc.get("notes", []) if model is Thread else []:
                assert isinstance(note, dict), note
    assert checked > 100
    assert await Message.find({}).count() > 20


async def _touch_everything_else():
    """Every update path that seed does not take."""
    from chatadmin.services import accounts, analyses, cache, contexts, shares, users

    t = await threads.create_thread("org-z", "u1")
    await threads.add_note("org-z", t.thread_id, "support", "called the user")
    await threads.add_note("org-z", t.thread_id, "support", "resolved")
    await threads.archive("org-z", t.thread_id)
    await threads.soft_delete("org-z", t.thread_id)
    await threads.restore("org-z", t.thread_id)
    a = await analyses.create_analysis("org-z", title="t", is_template=True)
    await analyses.reuse_analysis("org-z", a.analysis_id, question="again?")
    saved = await analyses.save_analysis("org-z", "u1", a.analysis_id, "mine")
    await analyses.use_saved("org-z", saved.saved_id)
    await users.upsert_user("org-z", "u1", email="u@z.example", last_login=utcnow())
    await users.upsert_user("org-z", "u1", username="u1")
    await cache.put("org-z", "q", {"p": 1}, {"r": 1})
    await cache.put("org-z", "q", {"p": 1}, {"r": 2})
    await cache.lookup("org-z", "q", {"p": 1})
    await contexts.upsert_context("org-z", "c1", key_points=["a"])
    await contexts.upsert_context("org-z", "c1", decisions=["b"])
    share = await shares.create_share("org-z", t.thread_id, expires_in_seconds=3600)
    await shares.revoke_share("org-z", share.share_id)
    await accounts.create_admin_user("root", "a long enough password", "admin")
    await accounts.authenticate_admin("root", "a long enough password")
    _key, plaintext = await accounts.create_api_key("org-z", ["read"])
    await accounts.verify_api_key(plaintext)


def _walk(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, path)
    else:
        yield path, value
