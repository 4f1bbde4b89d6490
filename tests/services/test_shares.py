"""Shares: public snapshots without tenant or user ids, unguessable ids, expiry, revoke, limits."""

from typing import Any

import pytest

from chatadmin.clock import to_ms, utcnow
from chatadmin.exceptions import Invalid, NotFound, TooLarge
from chatadmin.models import SharedThread
from chatadmin.services import messages, shares, threads

pytestmark = pytest.mark.usefixtures("database")

ORG, USER = "org-secret-7f3a", "user-secret-91bc"


def _walk(value: Any, path: str = "$"):
    """Every (path, key, value) of a nested structure."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield path, k, v
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


async def _conversation(n: int = 3, org=ORG, user=USER):
    t = await threads.create_thread(org, user, title="Payroll chat", tags=["hr"])
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        await messages.append_message(org, t.thread_id, role=role, content=f"message {i}")
    return t


async def test_snapshot_has_thread_and_messages_in_seq_order():
    t = await _conversation(4)
    await messages.add_assistant_message_with_analysis(
        ORG,
        t.thread_id,
        content="Here is the analysis.",
        analysis={
            "title": "Headcount",
            "result": {"body": [{"key": "Sales", "value": 12}]},
            "parameters": {"team": "sales"},
        },
        execution={"question": "how many?"},
    )
    share = await shares.create_share(ORG, t.thread_id, created_by="admin-1")
    snap = (await shares.get_share(share.share_id)).snapshot
    assert snap["thread"]["thread_id"] == t.thread_id
    assert snap["thread"]["title"] == "Payroll chat" and snap["thread"]["tags"] == ["hr"]
    assert snap["thread"]["message_count"] == 5
    assert [m["seq"] for m in snap["messages"]] == [0, 1, 2, 3, 4]
    assert [m["text"] for m in snap["messages"][:4]] == [f"message {i}" for i in range(4)]
    assert snap["messages"][4]["analysis"]["title"] == "Headcount"
    assert share.thread_id == t.thread_id and share.size_bytes > 0
    assert share.created_by == "admin-1" and share.org_id == ORG


async def test_snapshot_holds_no_org_or_user_id_anywhere():
    t = await _conversation(3)
    await messages.add_assistant_message_with_analysis(
        ORG, t.thread_id, content="done", analysis={"title": "A"}, execution={"question": "q"}
    )
    share = await shares.create_share(ORG, t.thread_id)
    stored = await SharedThread.get_pymongo_collection().find_one({"share_id": share.share_id})
    for snap in (share.snapshot, stored["snapshot"]):
        for path, key, value in _walk(snap):
            assert key not in ("org_id", "user_id"), f"{path}.{key}"
            assert not (isinstance(value, str) and (ORG in value or USER in value)), path
    assert "messages" in stored["snapshot"] and len(stored["snapshot"]["messages"]) == 4


async def test_share_ids_are_long_url_safe_and_distinct():
    t = await _conversation(1)
    ids = [(await shares.create_share(ORG, t.thread_id)).share_id for _ in range(20)]
    assert len(set(ids)) == 20
    for share_id in ids:
        assert len(share_id) >= 43  # 32 random bytes
        assert all(c.isalnum() or c in "-_" for c in share_id)
    assert await SharedThread.find({"thread_id": t.thread_id}).count() == 20


async def test_snapshot_does_not_change_when_the_thread_does():
    t = await _conversation(2)
    share = await shares.create_share(ORG, t.thread_id)
    await messages.append_message(ORG, t.thread_id, role="user", content="after sharing")
    await threads.rename(ORG, t.thread_id, "Renamed")
    snap = (await shares.get_share(share.share_id)).snapshot
    assert len(snap["messages"]) == 2 and snap["thread"]["title"] == "Payroll chat"


async def test_unknown_share_is_not_found():
    with pytest.raises(NotFound):
        await shares.get_share("no-such-share-id-at-all-0000000000")


async def test_share_without_expiry_never_expires():
    t = await _conversation(1)
    share = await shares.create_share(ORG, t.thread_id)
    assert share.expires_at is None and share.expires_at_ms == 0
    assert (await shares.get_share(share.share_id)).share_id == share.share_id


async def test_expired_share_is_not_found():
    t = await _conversation(1)
    share = await shares.create_share(ORG, t.thread_id, expires_in_seconds=60)
    now = to_ms(utcnow())
    assert now + 59_000 <= share.expires_at_ms <= now + 61_000
    assert (await shares.get_share(share.share_id)).share_id == share.share_id
    await SharedThread.get_pymongo_collection().update_one(
        {"share_id": share.share_id}, {"$set": {"expires_at_ms": to_ms(utcnow()) - 1000}}
    )
    with pytest.raises(NotFound):
        await shares.get_share(share.share_id)


@pytest.mark.parametrize("seconds", [0, 1, 59, 366 * 24 * 3600 + 1])
async def test_expiry_out_of_range_is_invalid(seconds):
    t = await _conversation(1)
    with pytest.raises(Invalid):
        await shares.create_share(ORG, t.thread_id, expires_in_seconds=seconds)
    assert await SharedThread.find({}).count() == 0


async def test_revoke_hides_the_share_and_only_its_org_can_revoke():
    t = await _conversation(1)
    share = await shares.create_share(ORG, t.thread_id)
    with pytest.raises(NotFound):
        await shares.revoke_share("org-b", share.share_id)
    assert (await shares.get_share(share.share_id)).revoked is False
    revoked = await shares.revoke_share(ORG, share.share_id)
    assert revoked.revoked is True and revoked.revoked_at is not None
    with pytest.raises(NotFound):
        await shares.get_share(share.share_id)
    with pytest.raises(NotFound):  # a second revoke finds nothing live to revoke
        await shares.revoke_share(ORG, share.share_id)


async def test_share_of_another_orgs_or_a_deleted_thread_is_not_found():
    t = await _conversation(1)
    with pytest.raises(NotFound):
        await shares.create_share("org-b", t.thread_id)
    await threads.soft_delete(ORG, t.thread_id)
    with pytest.raises(NotFound):
        await shares.create_share(ORG, t.thread_id)
    assert await SharedThread.find({}).count() == 0


async def test_too_large_past_max_bytes_writes_nothing():
    t = await threads.create_thread(ORG, USER)
    for i in range(3):
        await messages.append_message(ORG, t.thread_id, role="user", content=f"{i}" * 2000)
    with pytest.raises(TooLarge):
        await shares.create_share(ORG, t.thread_id, max_bytes=5000)
    assert await SharedThread.find({}).count() == 0
    ok = await shares.create_share(ORG, t.thread_id, max_bytes=50_000)
    assert 6000 < ok.size_bytes <= 50_000


async def test_too_large_past_max_messages_writes_nothing():
    t = await _conversation(5)
    with pytest.raises(TooLarge):
        await shares.create_share(ORG, t.thread_id, max_messages=4)
    assert await SharedThread.find({}).count() == 0
    ok = await shares.create_share(ORG, t.thread_id, max_messages=5)
    assert len(ok.snapshot["messages"]) == 5


async def test_message_limit_holds_even_when_the_thread_counter_lags():
    t = await _conversation(5)
    await threads.Thread.get_pymongo_collection().update_one(
        {"thread_id": t.thread_id}, {"$set": {"message_count": 1}}
    )
    with pytest.raises(TooLarge):
        await shares.create_share(ORG, t.thread_id, max_messages=3)
    assert await SharedThread.find({}).count() == 0
