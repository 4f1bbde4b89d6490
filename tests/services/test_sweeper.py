"""The expiry sweeper deletes expired documents itself, on any server."""

from datetime import timedelta

import pytest

from chatadmin.clock import to_ms, utcnow
from chatadmin.models import CacheEntry, ChatContext, Connection, SharedThread
from chatadmin.services.sweeper import sweep_expired

pytestmark = pytest.mark.usefixtures("database")


async def _docs(expires_in: timedelta, suffix: str):
    at = utcnow() + expires_in
    ms = to_ms(at)
    await CacheEntry(org_id="o", cache_key=suffix * 64, question="q", result=1,
                     expires_at=at, expires_at_ms=ms).insert()  # fmt: skip
    await ChatContext(org_id="o", context_id=f"c{suffix}", expires_at=at, expires_at_ms=ms).insert()
    await Connection(org_id="o", connection_id=f"n{suffix}", user_id="u", connected_at=utcnow(),
                     expires_at=at, expires_at_ms=ms).insert()  # fmt: skip
    await SharedThread(org_id="o", share_id=f"s{suffix}" * 10, thread_id="t", snapshot={},
                       expires_at=at, expires_at_ms=ms).insert()  # fmt: skip


async def test_sweep_deletes_what_expired_by_then_and_keeps_the_rest(database):
    await _docs(timedelta(hours=1), "a")  # expired by the sweep time below
    await _docs(timedelta(days=3), "b")  # still live then
    await SharedThread(org_id="o", share_id="never" * 5, thread_id="t", snapshot={}).insert()
    counts = await sweep_expired(utcnow() + timedelta(days=1))
    assert counts == {"cache": 1, "shared_threads": 1, "chat_contexts": 1, "connections": 1}
    for name in ("cache", "chat_contexts", "connections"):
        assert await database.db[name].count_documents({}) == 1
    remaining = {d["share_id"] async for d in database.db["shared_threads"].find()}
    assert remaining == {"sb" * 10, "never" * 5}
    assert await sweep_expired(utcnow() + timedelta(days=1)) == dict.fromkeys(counts, 0)
