"""The audit log (diff, record, filtered newest-first pages) and admin accounts and API keys."""

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

import pytest

from chatadmin.clock import to_ms, utcnow
from chatadmin.exceptions import Conflict, Invalid
from chatadmin.models import AdminUser, ApiKey, AuditLog
from chatadmin.services import accounts, audit
from chatadmin.services.pagination import encode_cursor

pytestmark = pytest.mark.usefixtures("database")

PASSWORD = "correct horse battery"


def _strings(value: Any):
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
    else:
        yield str(value)


async def _entry(org="org-a", **kw) -> AuditLog:
    actor = audit.Actor(
        kw.pop("actor_type", "admin"),
        kw.pop("actor_id", "admin-1"),
        ip_address=kw.pop("ip_address", None),
        user_agent=kw.pop("user_agent", None),
    )
    target = audit.Resource(kw.pop("resource_type", "thread"), kw.pop("resource_id", "t1"), org)
    return await audit.record(
        actor,
        kw.pop("action", "update"),
        target,
        kw.pop("before", None),
        kw.pop("after", None),
        **kw,
    )


# --- audit: diff and record ---------------------------------------------------------------


def test_diff_lists_changed_added_and_removed_fields_only():
    before = {"title": "a", "status": "active", "tags": ["x"], "gone": 1}
    after = {"title": "b", "status": "active", "tags": ["x", "y"], "new": None, "added": 2}
    assert audit.diff(before, after) == {
        "added": [None, 2],
        "gone": [1, None],
        "tags": [["x"], ["x", "y"]],
        "title": ["a", "b"],
    }
    assert list(audit.diff(before, after)) == ["added", "gone", "tags", "title"]  # sorted
    assert audit.diff(before, before) == {}
    assert audit.diff(None, {"a": 1}) == {"a": [None, 1]}
    assert audit.diff({"a": 1}, None) == {"a": [1, None]}
    assert audit.diff(None, None) == {}


async def test_record_computes_changes_from_before_and_after():
    entry = await _entry(before={"title": "old", "n": 1}, after={"title": "new", "n": 1})
    stored = await AuditLog.find_one({"audit_id": entry.audit_id})
    assert stored.changes == {"title": ["old", "new"]}
    assert stored.before == {"title": "old", "n": 1} and stored.after == {"title": "new", "n": 1}
    assert stored.org_id == "org-a" and stored.success is True and stored.created_at_ms > 0


async def test_record_keeps_explicit_changes_and_leaves_none_without_before_or_after():
    explicit = await _entry(before={"a": 1}, after={"a": 2}, changes={"a": "custom"})
    assert (await AuditLog.find_one({"audit_id": explicit.audit_id})).changes == {"a": "custom"}
    bare = await _entry(action="login", success=False, error_message="bad password",
                        ip_address="10.0.0.1", metadata={"ua": "x"})  # fmt: skip
    stored = await AuditLog.find_one({"audit_id": bare.audit_id})
    assert stored.changes is None and stored.success is False
    assert stored.error_message == "bad password" and stored.metadata == {"ua": "x"}


async def test_record_refuses_unknown_actor_types():
    with pytest.raises(ValueError):
        await _entry(actor_type="robot")
    assert await AuditLog.find({}).count() == 0


# --- audit: list --------------------------------------------------------------------------


async def test_list_is_newest_first_and_org_scoped():
    ids = []
    for i in range(4):
        ids.append((await _entry(resource_id=f"t{i}")).audit_id)
        await asyncio.sleep(0.003)
    await _entry(org="org-b")
    page = await audit.list_entries("org-a")
    assert [e.audit_id for e in page.items] == list(reversed(ids))
    assert all(e.org_id == "org-a" for e in page.items) and page.next_cursor is None


async def test_list_filters_by_resource_action_actor_and_since():
    old = utcnow() - timedelta(days=2)
    await AuditLog(org_id="org-a", actor_type="system", actor_id="sweeper", action="delete",
                   resource_type="share", resource_id="s1", created_at=old).insert()  # fmt: skip
    a = await _entry(resource_type="thread", resource_id="t1", action="rename")
    b = await _entry(resource_type="thread", resource_id="t2", action="archive")
    c = await _entry(resource_type="user", resource_id="t1", action="rename", actor_id="admin-2")

    async def ids(**kw):
        return {e.audit_id for e in (await audit.list_entries("org-a", **kw)).items}

    assert await ids(resource_type="thread") == {a.audit_id, b.audit_id}
    assert await ids(resource_type="thread", resource_id="t1") == {a.audit_id}
    assert await ids(action="rename") == {a.audit_id, c.audit_id}
    assert await ids(actor_id="admin-2") == {c.audit_id}
    assert await ids(actor_id="admin-1", action="rename") == {a.audit_id}
    assert len(await ids()) == 4
    assert await ids(since=utcnow() - timedelta(days=1)) == {a.audit_id, b.audit_id, c.audit_id}
    # Filter values are compared as plain strings, never as operators.
    assert await ids(action={"$ne": "x"}) == set()


async def test_list_cursor_pages_without_gaps_or_duplicates_across_equal_times():
    same = utcnow() - timedelta(minutes=1)
    for i in range(5):
        await AuditLog(org_id="org-a", audit_id=f"same-{i}", actor_type="admin", actor_id="a",
                       action="x", resource_type="thread", created_at=same).insert()  # fmt: skip
    for i in range(2):
        await AuditLog(org_id="org-a", audit_id=f"later-{i}", actor_type="admin", actor_id="a",
                       action="x", resource_type="thread",
                       created_at=same + timedelta(seconds=i + 1)).insert()  # fmt: skip
    seen, cursor = [], None
    for _ in range(10):
        page = await audit.list_entries("org-a", limit=2, cursor=cursor)
        seen.extend(e.audit_id for e in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["later-1", "later-0", "same-4", "same-3", "same-2", "same-1", "same-0"]


@pytest.mark.parametrize("cursor", ["???", encode_cursor({"ms": 1, "id": 2})])
async def test_list_bad_cursor_is_invalid(cursor):
    with pytest.raises(Invalid):
        await audit.list_entries("org-a", cursor=cursor)


# --- admin users --------------------------------------------------------------------------


def test_password_hash_is_argon2id_salted_and_verifies():
    h1 = accounts.hash_password(PASSWORD)
    h2 = accounts.hash_password(PASSWORD)
    assert h1.startswith("$argon2id$") and h2.startswith("$argon2id$")
    assert h1 != h2 and PASSWORD not in h1
    assert accounts.verify_password(h1, PASSWORD) is True
    assert accounts.verify_password(h1, PASSWORD + "x") is False
    assert accounts.verify_password("not-a-hash", PASSWORD) is False


async def test_create_and_authenticate_admin():
    user = await accounts.create_admin_user("alice", PASSWORD, "support", org_id="org-a")
    stored = await AdminUser.get_pymongo_collection().find_one({"username": "alice"})
    assert stored["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in list(_strings(stored))
    assert stored["role"] == "support" and stored["org_id"] == "org-a"
    before = to_ms(utcnow())
    found = await accounts.authenticate_admin("alice", PASSWORD)
    assert found is not None and found.id == user.id
    stored = await AdminUser.find_one({"username": "alice"})
    assert stored.last_login_at_ms >= before and stored.last_login_at is not None


async def test_authenticate_wrong_password_unknown_user_or_inactive_is_none():
    await accounts.create_admin_user("alice", PASSWORD, "admin")
    assert await accounts.authenticate_admin("alice", "wrong password!") is None
    assert await accounts.authenticate_admin("nobody", PASSWORD) is None
    assert await accounts.authenticate_admin("ALICE", PASSWORD) is None
    assert (await AdminUser.find_one({"username": "alice"})).last_login_at_ms == 0
    await AdminUser.get_pymongo_collection().update_one(
        {"username": "alice"}, {"$set": {"is_active": False}}
    )
    assert await accounts.authenticate_admin("alice", PASSWORD) is None


async def test_duplicate_username_conflicts():
    await accounts.create_admin_user("alice", PASSWORD, "admin")
    with pytest.raises(Conflict):
        await accounts.create_admin_user("alice", PASSWORD + "2", "viewer")
    assert await AdminUser.find({"username": "alice"}).count() == 1
    assert await accounts.authenticate_admin("alice", PASSWORD) is not None


async def test_short_password_or_unknown_role_is_invalid():
    with pytest.raises(Invalid):
        await accounts.create_admin_user("bob", "x" * (accounts.MIN_PASSWORD_LENGTH - 1), "admin")
    with pytest.raises(Invalid):
        await accounts.create_admin_user("bob", PASSWORD, "superuser")
    assert await AdminUser.find({}).count() == 0


# --- API keys -----------------------------------------------------------------------------


async def test_api_key_plaintext_is_returned_once_and_only_its_hash_is_stored():
    key, plaintext = await accounts.create_api_key(
        "org-a", ["read", "ingest", "read"], name="backend", created_by="alice"
    )
    prefix, key_id, secret = plaintext.split("_", 2)
    assert prefix == "ca" and key_id == key.key_id and len(secret) >= 40
    assert key.scopes == ["ingest", "read"]
    stored = await ApiKey.get_pymongo_collection().find_one({"key_id": key.key_id})
    assert stored["key_hash"] == hashlib.sha256(plaintext.encode()).hexdigest()
    for text in _strings(stored):
        assert plaintext not in text and secret not in text


async def test_verify_api_key_accepts_the_plaintext_and_records_its_use():
    key, plaintext = await accounts.create_api_key("org-a", ["read"])
    assert (await ApiKey.find_one({"key_id": key.key_id})).last_used_at_ms == 0
    before = to_ms(utcnow())
    found = await accounts.verify_api_key(plaintext)
    assert found is not None and found.key_id == key.key_id and found.org_id == "org-a"
    assert found.last_used_at_ms >= before
    stored = await ApiKey.find_one({"key_id": key.key_id})
    assert stored.last_used_at_ms == found.last_used_at_ms and stored.last_used_at is not None


async def test_verify_api_key_refuses_wrong_and_revoked_keys():
    key, plaintext = await accounts.create_api_key("org-a", ["read"])
    _other, other_plain = await accounts.create_api_key("org-a", ["read"])
    wrong_secret = plaintext[:-4] + ("AAAA" if not plaintext.endswith("AAAA") else "BBBB")
    assert await accounts.verify_api_key(wrong_secret) is None
    # Another key's secret under this key's id.
    swapped = f"ca_{key.key_id}_{other_plain.split('_', 2)[2]}"
    assert await accounts.verify_api_key(swapped) is None
    assert (await ApiKey.find_one({"key_id": key.key_id})).last_used_at_ms == 0

    assert await accounts.revoke_api_key(key.key_id) is True
    assert await accounts.verify_api_key(plaintext) is None
    assert await accounts.revoke_api_key(key.key_id) is False
    assert await accounts.verify_api_key(other_plain) is not None


@pytest.mark.parametrize(
    "plaintext",
    ["", "ca", "ca_", "ca__", "nope", "xx_abcdef0123456789_secret", "ca_unknownid_secret",
     "ca_" + "a" * 300, None, 12345],
)  # fmt: skip
async def test_verify_api_key_refuses_malformed_values(plaintext):
    await accounts.create_api_key("org-a", ["read"])
    assert await accounts.verify_api_key(plaintext) is None


async def test_api_key_scopes_must_be_a_known_non_empty_set():
    with pytest.raises(Invalid):
        await accounts.create_api_key("org-a", [])
    with pytest.raises(Invalid):
        await accounts.create_api_key("org-a", ["read", "root"])
    assert await ApiKey.find({}).count() == 0
