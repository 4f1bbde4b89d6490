"""Pins of the MongoDB behaviour the product relies on, and of each gap it works around
(MONGO-COMPAT.md and docs/mongo-compat.md).

Every test runs on both test servers (nx-27017 and SecantusDB; real MongoDB with MONGODB_URI).
A rule the product relies on must hold on every server: those tests assert one answer. A gap
test asserts what each server does, through `answer()`: MongoDB's answer (SecantusDB gives it
unless said otherwise) and nx-27017's, so a change of either server shows up here as a red test.
"""

import asyncio
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from bson import Decimal128, ObjectId
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, WriteError

from chatadmin.clock import to_ms, utcnow
from chatadmin.models import DOCUMENT_MODELS, Message, Thread
from chatadmin.models.thread import LIVE_FILTER, LIVE_STATUSES, THREAD_STATUSES
from chatadmin.seed import seed
from chatadmin.services import threads

pytestmark = pytest.mark.usefixtures("database")
DATE_STRING = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?")
UNSET = object()


def answer(kind: str, *, mongodb: Any, nx: Any, secantusdb: Any = UNSET) -> Any:
    """The answer the server of `kind` gives: MongoDB's, nx-27017's, or SecantusDB's where it
    differs from MongoDB's."""
    if kind == "nx-27017":
        return nx
    if kind == "secantusdb" and secantusdb is not UNSET:
        return secantusdb
    return mongodb


@pytest.fixture
def coll(database):
    return database.db[f"compat_{uuid.uuid4().hex[:8]}"]


# -- rules the product relies on: the same answer on every server ------------------------------


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


async def test_an_unordered_bulk_of_conditional_upserts_names_the_ones_that_did_not_apply(coll):
    """Seq reservation in bulk (services/messages.py): a conditional update by `_id` that
    matches nothing is, as an upsert, a duplicate key on that `_id`, reported at its index;
    the others apply; one whose document is gone inserts, and says so in `upserted`."""
    await coll.insert_many([{"_id": f"o~t{i}", "org_id": "o", "next": 5} for i in range(3)])

    def op(i: int, expect: int) -> UpdateOne:
        change = {"$inc": {"next": 2}, "$setOnInsert": {"gone": True}}
        return UpdateOne({"_id": f"o~t{i}", "org_id": "o", "next": expect}, change, upsert=True)

    with pytest.raises(BulkWriteError) as raised:
        await coll.bulk_write([op(0, 5), op(1, 4), op(2, 5), op(9, 0)], ordered=False)
    details = raised.value.details
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(1, 11000)]
    assert [(u["index"], u["_id"]) for u in details["upserted"]] == [(3, "o~t9")]
    found = {d["_id"]: (d["next"], d.get("gone")) for d in await coll.find({}).to_list()}
    assert found == {"o~t0": (7, None), "o~t1": (5, None), "o~t2": (7, None), "o~t9": (2, True)}


async def test_in_on_id_finds_string_ids_on_every_server(coll):
    """Batch lookups by client id go through `_id` (`TenantDocument.keyed`)."""
    await coll.insert_many([{"_id": f"acme~m{i}", "org_id": "acme"} for i in range(5)])
    query = {"_id": {"$in": ["acme~m1", "acme~m3", "acme~nope"]}, "org_id": "acme"}
    assert sorted(d["_id"] for d in await coll.find(query).to_list()) == ["acme~m1", "acme~m3"]


async def test_the_live_filter_selects_the_live_statuses(coll):
    """Seq reservations filter by `LIVE_FILTER` (`$ne`), cheaper on nx-27017 than `$in`."""
    await coll.insert_many([{"_id": s, "status": s} for s in THREAD_STATUSES])
    by_in = await coll.find({"status": {"$in": LIVE_STATUSES}}).to_list()
    by_ne = await coll.find({"status": LIVE_FILTER}).to_list()
    assert sorted(d["_id"] for d in by_ne) == sorted(d["_id"] for d in by_in) == LIVE_STATUSES
    for status in THREAD_STATUSES:
        done = await coll.update_one({"_id": status, "status": LIVE_FILTER}, {"$inc": {"n": 1}})
        assert done.modified_count == (status in LIVE_STATUSES)


async def test_concurrent_find_one_and_update_inc_hands_out_distinct_values(coll):
    await coll.insert_one({"_id": "seq", "next": 0})

    async def take():
        doc = await coll.find_one_and_update(
            {"_id": "seq"}, {"$inc": {"next": 1}}, return_document=ReturnDocument.AFTER
        )
        return doc["next"]

    values = await asyncio.gather(*[take() for _ in range(40)])
    assert sorted(values) == list(range(1, 41))


async def test_push_each_slice_of_strings_keeps_the_newest(coll):
    """Seq claims: a thread keeps the newest claims of its messages (services/messages.py)."""
    await coll.insert_one({"_id": "t", "claims": []})
    for batch in (["a", "b", "c"], ["d", "e"]):
        await coll.update_one({"_id": "t"}, {"$push": {"claims": {"$each": batch, "$slice": -4}}})
    assert (await coll.find_one({"_id": "t"}))["claims"] == ["b", "c", "d", "e"]
    await coll.update_one({"_id": "t"}, {"$pull": {"claims": {"$in": ["c", "zz"]}}})
    assert (await coll.find_one({"_id": "t"}))["claims"] == ["b", "d", "e"]


async def test_nin_on_an_array_field_guards_a_concurrent_claim(coll):
    """Of concurrent claims of the same ids, exactly one matches `$nin` and reserves seqs."""
    await coll.insert_one({"_id": "t", "next_seq": 0, "claims": ["old"]})
    claims = ["m1", "m2"]

    async def claim():
        return await coll.find_one_and_update(
            {"_id": "t", "claims": {"$nin": claims}},
            {"$inc": {"next_seq": 2}, "$push": {"claims": {"$each": claims, "$slice": -1024}}},
            return_document=ReturnDocument.AFTER,
        )

    won = [r for r in await asyncio.gather(*(claim() for _ in range(8))) if r is not None]
    assert len(won) == 1 and won[0]["next_seq"] == 2
    stored = await coll.find_one({"_id": "t"})
    assert stored["claims"] == ["old", "m1", "m2"] and stored["next_seq"] == 2
    partly = await coll.find_one({"_id": "t", "claims": {"$nin": ["m2", "m3"]}})
    assert partly is None  # any one of the ids taken is enough to refuse


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


async def test_full_text_search_with_tenant_filter(database):
    """In the database's search mode (text or terms), a search stays inside its org."""
    from chatadmin import search
    from chatadmin.models import Analysis

    docs = [
        Analysis(analysis_id="1", org_id="a", title="AAPL volatility", description="30 days"),
        Analysis(analysis_id="2", org_id="b", title="NVDA volatility", description="7 days"),
        Analysis(analysis_id="3", org_id="a", title="Rates", description="bond yields"),
    ]
    coll = database.db["analyses"]
    await coll.insert_many([d.stamped().storage_fields() for d in docs])
    query = {"org_id": "a", **search.condition("volatility")}
    assert [d["analysis_id"] async for d in coll.find(query)] == ["1"]


async def test_upsert_by_id_honours_setoninsert_on_both(coll):
    """Deterministic `_id`s for counters and buckets are safe: both servers keep the
    insert-only fields of an upsert by `_id` (update_one and bulk_write alike)."""
    now = utcnow()
    await coll.bulk_write(
        [UpdateOne({"_id": "day1"}, {"$inc": {"n": 1}, "$setOnInsert": {"day": now}}, upsert=True)]
        * 3,
        ordered=False,
    )
    await coll.update_one(
        {"_id": "day1"}, {"$inc": {"n": 1}, "$setOnInsert": {"day": 0}}, upsert=True
    )
    assert await coll.find_one({"_id": "day1"}) == {"_id": "day1", "n": 4, "day": now}


async def test_duplicate_keys_raise_code_11000_on_both(coll):
    await coll.create_index([("k", 1)], unique=True)
    await coll.insert_one({"_id": 1, "k": "x"})
    with pytest.raises(DuplicateKeyError) as caught:
        await coll.insert_one({"_id": 2, "k": "x"})
    assert caught.value.code == 11000


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


# -- gaps: where the servers differ, and which one behaves like MongoDB ------------------------


async def test_set_of_a_datetime(coll, server_kind):
    """MongoDB stores a date; nx-27017 a string. Rule: update operators never carry datetimes
    (changing times are epoch-ms fields; expiring documents are written whole)."""
    await coll.insert_one({"_id": "a"})
    await coll.update_one({"_id": "a"}, {"$set": {"at": utcnow()}, "$max": {"top": utcnow()}})
    doc = await coll.find_one({"_id": "a"})
    kinds = (type(doc["at"]).__name__, type(doc["top"]).__name__)
    assert kinds == answer(server_kind, mongodb=("datetime", "datetime"), nx=("str", "str"))


async def test_push_of_a_subdocument(coll, server_kind):
    """MongoDB appends a document; nx-27017 turns the whole array into JSON strings. Rule:
    sub-documents are appended with `$addToSet` (thread notes)."""
    await coll.insert_one({"_id": "t", "arr": [{"k": 1}]})
    await coll.update_one({"_id": "t"}, {"$push": {"arr": {"k": 2}}})
    arr = (await coll.find_one({"_id": "t"}))["arr"]
    assert arr == answer(server_kind, mongodb=[{"k": 1}, {"k": 2}], nx=['{"k":1}', '{"k":2}'])


async def test_find_one_and_update_upsert_with_setoninsert(coll, server_kind):
    """MongoDB applies `$setOnInsert`; nx-27017 ignores it (and makes an ObjectId `_id`).
    Rule: upserts go through update_one/bulk_write, then a read."""
    doc = await coll.find_one_and_update(
        {"k": "x"},
        {"$inc": {"n": 1}, "$setOnInsert": {"_id": "sid", "f": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    honoured = doc["_id"] == "sid" and doc.get("f") == 1
    assert honoured == answer(server_kind, mongodb=True, nx=False)


async def test_dotted_inc_in_an_upsert(coll, server_kind):
    """MongoDB makes a nested document; nx-27017 a literal dotted key. Rule: rollup counters
    are flat top-level fields."""
    await coll.update_one({"k": 1}, {"$inc": {"m.a": 1}}, upsert=True)
    doc = await coll.find_one({"k": 1}, {"_id": 0, "k": 0})
    assert doc == answer(server_kind, mongodb={"m": {"a": 1}}, nx={"m.a": 1})


async def test_set_of_a_boolean(coll, server_kind):
    """MongoDB stores true; nx-27017 stores 1 (which still matches `true`). Rule: booleans are
    read back through the model."""
    await coll.insert_one({"_id": "a"})
    await coll.update_one({"_id": "a"}, {"$set": {"flag": True}})
    raw = (await coll.find_one({"_id": "a"}))["flag"]
    assert (type(raw).__name__, raw) == answer(server_kind, mongodb=("bool", True), nx=("int", 1))
    assert await coll.count_documents({"flag": True}) == 1


async def test_sub_second_datetime_comparison(coll, server_kind):
    """MongoDB compares to the millisecond; nx-27017 misses T+1 ms for `$gt T`. Rule: cursors
    and fine comparisons use integer `*_ms` fields."""
    now = utcnow().replace(microsecond=123_000)
    await coll.insert_many(
        [{"_id": 1, "at": now}, {"_id": 2, "at": now + timedelta(milliseconds=1)}]
    )
    found = [d["_id"] async for d in coll.find({"at": {"$gt": now}})]
    assert found == answer(server_kind, mongodb=[2], nx=[])


async def test_exists_and_null(coll, server_kind):
    """MongoDB counts a null field as existing; nx-27017 as missing. Rule: no `$exists`;
    always-present explicit fields (`deleted: false`)."""
    await coll.insert_many([{"_id": 1, "v": None}, {"_id": 2}, {"_id": 3, "v": 1}])
    found = sorted([d["_id"] async for d in coll.find({"v": {"$exists": True}})])
    assert found == answer(server_kind, mongodb=[1, 3], nx=[3])


async def test_null_and_missing_in_equality_and_ne(coll, server_kind):
    """`{v: null}` matches a null and a missing field everywhere; `{v: {$ne: null}}` skips both
    on MongoDB but matches the missing one on nx-27017. Rule: no query for a null (a message's
    optional fields are left out while empty, `Message.SPARSE_FIELDS`)."""
    await coll.insert_many([{"_id": 1, "v": None}, {"_id": 2}, {"_id": 3, "v": 1}])
    assert sorted([d["_id"] async for d in coll.find({"v": None})]) == [1, 2]
    found = sorted([d["_id"] async for d in coll.find({"v": {"$ne": None}})])
    assert found == answer(server_kind, mongodb=[3], nx=[2, 3])


async def test_unique_index_and_missing_values(coll, server_kind):
    """MongoDB indexes a missing field as null (a second one is a duplicate); nx-27017 lets
    both in. Rule: unique fields are always present (`email_key` falls back to the user id)."""
    await coll.create_index([("e", 1)], unique=True)
    await coll.insert_one({"_id": 1})
    try:
        await coll.insert_one({"_id": 2})
        second_stored = True
    except DuplicateKeyError:
        second_stored = False
    assert second_stored == answer(server_kind, mongodb=False, nx=True)


async def test_compiled_regex(coll, server_kind):
    """MongoDB takes a compiled pattern; nx-27017 refuses it. Rule: `$regex` strings with
    `re.escape` on user input."""
    await coll.insert_one({"_id": 1, "s": "abc"})
    try:
        found = [d["_id"] async for d in coll.find({"s": re.compile("^a")})]
    except OperationFailure:
        found = "refused"
    assert found == answer(server_kind, mongodb=[1], nx="refused")


async def test_group_by_a_compound_key(coll, server_kind):
    """MongoDB groups by the values; nx-27017 by the spec's text. Rule: write-time rollups,
    never `$group` with compound keys for dashboards."""
    await coll.insert_many([{"_id": 1, "t": "a"}, {"_id": 2, "t": "b"}])
    rows = await (
        await coll.aggregate([{"$group": {"_id": {"t": "$t"}, "n": {"$sum": 1}}}])
    ).to_list()
    keys = sorted(str(r["_id"]["t"]) for r in rows)
    assert keys == answer(server_kind, mongodb=["a", "b"], nx=["$t"])


async def test_lookup(coll, database, server_kind):
    """MongoDB joins an array of documents; nx-27017 a JSON string. Rule: no `$lookup`."""
    other = database.db[f"{coll.name}_other"]
    await other.insert_one({"_id": 1, "v": "x"})
    await coll.insert_one({"_id": 1})
    stage = {"$lookup": {"from": other.name, "localField": "_id", "foreignField": "_id",
                         "as": "j"}}  # fmt: skip
    row = (await (await coll.aggregate([stage])).to_list())[0]
    assert type(row["j"]).__name__ == answer(server_kind, mongodb="list", nx="str")


async def test_update_past_16_mb(coll, server_kind):
    """MongoDB refuses a document that grows past 16 MB; nx-27017 stores it. Rule: size
    limits are checked by the app before every write."""
    big = "x" * (9 * 1024 * 1024)
    await coll.insert_one({"_id": 1, "a": big})
    try:
        stored = (await coll.update_one({"_id": 1}, {"$set": {"b": big}})).modified_count == 1
    except WriteError:
        stored = False
    assert stored == answer(server_kind, mongodb=False, nx=True)


async def test_list_indexes_keeps_names_directions_and_options(coll, server_kind):
    """MongoDB lists what was created; nx-27017 renames, reads -1 as 1 and drops `sparse`.
    Rule: indexes are compared by keys and options (unique, TTL), never by name or direction."""
    await coll.create_index([("a", 1), ("b", -1)], name="my_ab")
    await coll.create_index([("c", 1)], sparse=True, name="my_c")
    listed = sorted(
        [
            (i["name"], tuple(i["key"].items()), bool(i.get("sparse")))
            async for i in await coll.list_indexes()
            if i["name"] != "_id_"
        ]
    )
    mongodb = [("my_ab", (("a", 1), ("b", -1)), False), ("my_c", (("c", 1),), True)]
    nx = [
        (f"idx_{coll.name}_a_b", (("a", 1), ("b", 1)), False),
        (f"idx_{coll.name}_c", (("c", 1),), False),
    ]
    assert listed == answer(server_kind, mongodb=mongodb, nx=nx)


async def test_iso_strings_in_a_date_range(coll, server_kind):
    """MongoDB never matches a string against a date range; nx-27017 does. Rule: datetimes
    are always stored as BSON dates."""
    now = utcnow()
    await coll.insert_many([{"_id": 1, "d": now}, {"_id": 2, "d": now.isoformat()}])
    found = sorted([d["_id"] async for d in coll.find({"d": {"$gte": now - timedelta(days=1)}})])
    assert found == answer(server_kind, mongodb=[1], nx=[1, 2])


async def test_object_ids_outside_id(coll, server_kind):
    """MongoDB matches an ObjectId in any field; nx-27017 only in `_id`. Rule: string ids in
    every reference field."""
    oid = ObjectId()
    await coll.insert_one({"_id": 1, "ref": oid})
    found = [d["_id"] async for d in coll.find({"ref": oid})]
    assert found == answer(server_kind, mongodb=[1], nx=[])


async def test_decimal128_values(coll, server_kind):
    """MongoDB stores Decimal128; nx-27017 refuses it. Rule: no Decimal128, Timestamp or
    MinKey values."""
    try:
        await coll.insert_one({"_id": 1, "v": Decimal128("1.5")})
        stored = True
    except WriteError:
        stored = False
    assert stored == answer(server_kind, mongodb=True, nx=False)


async def test_range_into_an_array_of_subdocuments(coll, server_kind):
    """MongoDB matches a range on a field of array elements; nx-27017 matches nothing. Rule:
    `$in` on whole values and `$elemMatch`, no ranges into arrays of subdocuments."""
    await coll.insert_one({"_id": 1, "items": [{"n": 1}, {"n": 2}]})
    found = [d["_id"] async for d in coll.find({"items.n": {"$gt": 1}})]
    assert found == answer(server_kind, mongodb=[1], nx=[])


async def test_expired_documents_before_the_ttl_monitor_runs(coll, server_kind):
    """MongoDB keeps an expired document until its TTL monitor runs (every 60 s); nx-27017
    hides it on the next read and never deletes in the background. Rule: the product's
    sweeper deletes by `expires_at_ms`, and reads check expiry themselves."""
    await coll.create_index([("at", 1)], expireAfterSeconds=0)
    await coll.insert_one({"_id": 1, "at": utcnow() - timedelta(hours=1)})
    assert await coll.count_documents({}) == answer(server_kind, mongodb=1, nx=0)


async def test_text_indexes(coll, server_kind):
    """MongoDB creates a text index, lists it, and takes a repeat as a no-op; nx-27017 creates
    it but does not list it, and refuses the repeat once documents exist ("constraint
    failed"); SecantusDB has no text indexes at all. Rule: the search mode follows the server
    (terms where there is no text search); drift checks call unlisted text indexes
    unverifiable; a refused repeat counts as present."""
    await coll.insert_one({"_id": 1, "s": "alpha beta"})
    try:
        await coll.create_index([("s", "text")], name="s_text")
    except OperationFailure as exc:
        outcome = ("refused", exc.code)
    else:
        listed = "s_text" in [i["name"] async for i in await coll.list_indexes()]
        try:
            await coll.create_index([("s", "text")], name="s_text")
            outcome = ("created", listed, "repeat ok")
        except OperationFailure as exc:
            outcome = ("created", listed, str(exc).split(",")[0])
    assert outcome == answer(
        server_kind,
        mongodb=("created", True, "repeat ok"),
        nx=("created", False, "constraint failed"),
        secantusdb=("refused", 67),
    )


async def test_text_queries(coll, server_kind):
    """MongoDB OR-s unquoted words and returns whole documents beside a projected score;
    nx-27017 AND-s them and returns only `_id` and the score; SecantusDB refuses `$text`
    (code 2). Rule: every word is quoted (all must match), projections name every field."""
    await coll.insert_many([{"_id": 1, "s": "alpha beta", "o": "x"}, {"_id": 3, "s": "gamma"}])
    try:
        await coll.create_index([("s", "text")])
        unquoted = sorted(
            [d["_id"] async for d in coll.find({"$text": {"$search": "alpha gamma"}})]
        )
        scored = await coll.find(
            {"$text": {"$search": "alpha"}}, {"score": {"$meta": "textScore"}}
        ).to_list()
        outcome = (unquoted, sorted(scored[0]))
    except OperationFailure as exc:
        outcome = ("refused", exc.code)
    assert outcome == answer(
        server_kind,
        mongodb=([1, 3], ["_id", "o", "s", "score"]),
        nx=([], ["_id", "score"]),
        secantusdb=("refused", 67),
    )


async def test_equality_on_an_indexed_array_field(coll, server_kind):
    """MongoDB matches an element of an indexed array by equality; nx-27017, once a
    single-field index covers the array, matches nothing (without the index it does). Rule:
    `$in` for array membership (tags, search terms), which both answer right."""
    await coll.create_index([("tags", 1)])
    await coll.insert_many([{"_id": 1, "tags": ["a", "b"]}, {"_id": 2, "tags": ["c"]}])
    by_equality = [d["_id"] async for d in coll.find({"tags": "a"})]
    assert by_equality == answer(server_kind, mongodb=[1], nx=[])
    assert [d["_id"] async for d in coll.find({"tags": {"$in": ["a"]}})] == [1]
