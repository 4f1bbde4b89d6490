"""Users (create-or-update, email unique per org) and AI contexts (sliding 90-day expiry)."""

import asyncio
from datetime import timedelta

import pytest

from chatadmin.clock import to_ms, utcnow
from chatadmin.exceptions import Conflict, NotFound
from chatadmin.models import ChatContext, User
from chatadmin.services import contexts, messages, threads, users

pytestmark = pytest.mark.usefixtures("database")

DAY_MS = 86_400_000


# --- users --------------------------------------------------------------------------------


async def test_upsert_creates_then_updates_with_the_created_flag():
    user, created = await users.upsert_user(
        "org-a", "u1", email="Ann@Example.com", display_name="Ann", role="leader"
    )
    assert created is True
    assert user.user_id == "u1" and user.email == "Ann@Example.com" and user.role == "leader"
    assert user.email_key == "ann@example.com"
    assert user.message_count == 0 and user.thread_count == 0 and user.created_at_ms > 0

    again, created = await users.upsert_user("org-a", "u1", display_name="Ann B.")
    assert created is False
    assert again.display_name == "Ann B."
    assert again.email == "Ann@Example.com" and again.role == "leader"  # untouched fields kept
    assert again.id == user.id and again.created_at_ms == user.created_at_ms
    assert await User.find({"org_id": "org-a", "user_id": "u1"}).count() == 1
    assert (await users.get_user("org-a", "u1")).display_name == "Ann B."


async def test_update_keeps_counters_kept_by_message_writes():
    await users.upsert_user("org-a", "u1", email="a@example.com")
    t = await threads.create_thread("org-a", "u1")
    for i in range(3):
        await messages.append_message("org-a", t.thread_id, role="user", content=f"q{i}")
    counted = await users.get_user("org-a", "u1")
    assert counted.thread_count == 1 and counted.message_count == 3
    assert counted.last_active_at_ms > 0

    updated, created = await users.upsert_user(
        "org-a", "u1", username="ann", preferences={"lang": "fr"}
    )
    assert created is False
    assert updated.thread_count == 1 and updated.message_count == 3
    assert updated.last_active_at_ms == counted.last_active_at_ms
    assert updated.username == "ann" and updated.preferences == {"lang": "fr"}


async def test_email_is_unique_per_org_case_insensitively():
    await users.upsert_user("org-a", "u1", email="ann@example.com")
    with pytest.raises(Conflict):
        await users.upsert_user("org-a", "u2", email="ann@example.com")
    with pytest.raises(Conflict):
        await users.upsert_user("org-a", "u3", email="  ANN@example.COM ")
    assert await User.find({"org_id": "org-a"}).count() == 1
    # Changing one's own email to the same address is no conflict.
    _, created = await users.upsert_user("org-a", "u1", email="ann@example.com")
    assert created is False


async def test_taking_a_used_email_on_update_conflicts_and_keeps_the_old_one():
    await users.upsert_user("org-a", "u1", email="ann@example.com")
    await users.upsert_user("org-a", "u2", email="bob@example.com")
    with pytest.raises(Conflict):
        await users.upsert_user("org-a", "u2", email="ann@example.com")
    assert (await users.get_user("org-a", "u2")).email == "bob@example.com"


async def test_same_email_in_two_orgs_is_fine():
    a, _ = await users.upsert_user("org-a", "u1", email="ann@example.com")
    b, created = await users.upsert_user("org-b", "u1", email="ann@example.com")
    assert created is True and a.id != b.id
    assert (await users.get_user("org-b", "u1")).email == "ann@example.com"


async def test_users_without_email_do_not_collide():
    _, c1 = await users.upsert_user("org-a", "u1", display_name="one")
    _, c2 = await users.upsert_user("org-a", "u2", display_name="two")
    _, c3 = await users.upsert_user("org-a", "u3")
    assert c1 and c2 and c3
    stored = await User.find({"org_id": "org-a"}).to_list()
    assert len(stored) == 3 and all(u.email is None for u in stored)
    assert len({u.email_key for u in stored}) == 3
    # Removing an email frees the address.
    await users.upsert_user("org-a", "u4", email="x@example.com")
    await users.upsert_user("org-a", "u4", email=None)
    _, created = await users.upsert_user("org-a", "u5", email="x@example.com")
    assert created is True


async def test_unknown_user_fields_are_refused_and_counters_cannot_be_set():
    with pytest.raises(ValueError):
        await users.upsert_user("org-a", "u1", message_count=99)
    with pytest.raises(ValueError):
        await users.upsert_user("org-a", "u1", thread_count=5)
    assert await User.find({}).count() == 0


async def test_get_user_of_another_org_is_not_found():
    await users.upsert_user("org-a", "u1")
    with pytest.raises(NotFound):
        await users.get_user("org-b", "u1")
    with pytest.raises(NotFound):
        await users.get_user("org-a", "nobody")


# --- contexts -----------------------------------------------------------------------------


async def test_upsert_context_creates_and_merges_fields():
    first = await contexts.upsert_context(
        "org-a", "ctx-1", thread_id="t1", key_points=["likes charts"], token_count=10
    )
    assert first.scope_type == "conversation" and first.key_points == ["likes charts"]
    second = await contexts.upsert_context("org-a", "ctx-1", decisions=["use 2024 data"])
    assert second.key_points == ["likes charts"] and second.decisions == ["use 2024 data"]
    assert second.thread_id == "t1" and second.token_count == 10
    assert second.id == first.id and second.created_at_ms == first.created_at_ms
    got = await contexts.get_context("org-a", "ctx-1")
    assert got.decisions == ["use 2024 data"] and got.key_points == ["likes charts"]
    assert await ChatContext.find({}).count() == 1


async def test_every_write_pushes_the_expiry_forward():
    now = to_ms(utcnow())
    first = await contexts.upsert_context("org-a", "ctx-1", key_points=["a"])
    assert now + 90 * DAY_MS <= first.expires_at_ms <= to_ms(utcnow()) + 90 * DAY_MS
    assert to_ms(first.expires_at) == first.expires_at_ms
    # Pretend it is about to expire; the next write pushes it a full TTL ahead again.
    soon = to_ms(utcnow()) + 1000
    await ChatContext.get_pymongo_collection().update_one(
        {"context_id": "ctx-1"}, {"$set": {"expires_at_ms": soon}}
    )
    second = await contexts.upsert_context("org-a", "ctx-1", follow_ups=["send report"])
    assert second.expires_at_ms >= first.expires_at_ms
    stored = await contexts.get_context("org-a", "ctx-1")
    assert stored.expires_at_ms == second.expires_at_ms > soon + 89 * DAY_MS
    short = await contexts.upsert_context("org-a", "ctx-2", ttl_days=1)
    assert short.expires_at_ms <= to_ms(utcnow()) + DAY_MS


async def test_expired_context_is_not_found_and_a_write_revives_it():
    await contexts.upsert_context("org-a", "ctx-1", key_points=["old"])
    await ChatContext.get_pymongo_collection().update_one(
        {"context_id": "ctx-1"}, {"$set": {"expires_at_ms": to_ms(utcnow() - timedelta(days=1))}}
    )
    with pytest.raises(NotFound):
        await contexts.get_context("org-a", "ctx-1")
    await contexts.upsert_context("org-a", "ctx-1", key_points=["new"])
    assert (await contexts.get_context("org-a", "ctx-1")).key_points == ["new"]


async def test_contexts_are_isolated_per_org_and_unknown_fields_refused():
    await contexts.upsert_context("org-a", "ctx-1", key_points=["a"])
    with pytest.raises(NotFound):
        await contexts.get_context("org-b", "ctx-1")
    await contexts.upsert_context("org-b", "ctx-1", key_points=["b"])
    assert (await contexts.get_context("org-a", "ctx-1")).key_points == ["a"]
    assert (await contexts.get_context("org-b", "ctx-1")).key_points == ["b"]
    with pytest.raises(ValueError):
        await contexts.upsert_context("org-a", "ctx-1", expires_at_ms=0)
    with pytest.raises(NotFound):
        await contexts.get_context("org-a", "missing")


async def test_last_login_is_stored_as_epoch_ms_and_read_back_as_a_datetime():
    when = utcnow()
    user, _ = await users.upsert_user("org-a", "u1", last_login=when)
    assert user.last_login == when
    stored = await users.get_user("org-a", "u1")
    assert stored.last_login == when and stored.last_login_ms == to_ms(when)


async def test_concurrent_first_upserts_of_one_user_all_succeed_once():
    results = await asyncio.gather(
        *[users.upsert_user("org-a", "u1", display_name=f"n{i}") for i in range(10)]
    )
    assert sum(created for _, created in results) >= 1
    assert await User.find({"org_id": "org-a", "user_id": "u1"}).count() == 1
