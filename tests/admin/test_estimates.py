"""Estimated sizes of unfiltered lists: a large collection's estimate is remembered for a
while (nx-27017 counts rows, so the page would grow slower with the collection), a small one is
counted every time."""

import uuid

import pytest

from chatadmin.admin import estimates

pytestmark = pytest.mark.usefixtures("database")


@pytest.fixture
def coll(database):
    yield database.db[f"estimates_{uuid.uuid4().hex[:8]}"]


async def test_a_large_collections_estimate_is_remembered_then_read_again(coll, monkeypatch):
    monkeypatch.setattr(estimates, "REMEMBER_FROM", 10)
    await coll.insert_many([{"_id": f"a{i}"} for i in range(12)])
    assert await estimates.estimated_count(coll) == 12
    await coll.insert_many([{"_id": f"b{i}"} for i in range(5)])
    assert await estimates.estimated_count(coll) == 12  # remembered
    monkeypatch.setattr(estimates, "MAX_AGE_S", 0.0)
    assert await estimates.estimated_count(coll) == 17  # too old: read again
    await coll.drop()


async def test_a_small_collection_is_counted_every_time(coll, monkeypatch):
    monkeypatch.setattr(estimates, "REMEMBER_FROM", 10)
    await coll.insert_many([{"_id": f"a{i}"} for i in range(3)])
    assert await estimates.estimated_count(coll) == 3
    await coll.insert_one({"_id": "b"})
    assert await estimates.estimated_count(coll) == 4
    await coll.drop()
