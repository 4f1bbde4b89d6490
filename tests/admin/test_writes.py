"""The admin's create, edit, delete, restore and export go through the services: counters stay
in step, soft-deleted rows are hidden as everywhere else, and every write and export is
audited with the same resource vocabulary as the API."""

from __future__ import annotations

from chatadmin.models import AuditLog, Message, Thread
from chatadmin.services import messages
from tests.admin.pages import form_fields, row_pks
from tests.factories import make_messages, make_thread
from tests.rollups import assert_rollups_match_recount


async def _thread_of_four():
    thread = await make_thread("acme", "acme-user-1", "four", title="Four messages")
    made = await make_messages(thread, 4, ai_metadata={"total_tokens": 3, "response_ms": 1})
    for i, m in enumerate(made):  # recognisable text on the conversation page
        await messages.edit_message("acme", m.message_id, content=f"line-{i}-of-four")
    return thread, made


async def test_admin_delete_keeps_counters_and_every_page_hides_the_message(app, login_as):
    admin = await login_as("admin")
    _thread, made = await _thread_of_four()
    victim = made[1]
    deleted = await admin.action("messages", "delete", [victim.id])
    assert deleted.status_code == 200, deleted.text
    stored = await Thread.find_one({"org_id": "acme", "thread_id": "four"})
    assert (stored.message_count, stored.next_seq, stored.total_tokens) == (3, 4, 9)
    await assert_rollups_match_recount("acme", "four")

    page = await admin.get("/admin/conversations/four?org=acme")
    assert page.status_code == 200
    assert "line-0-of-four" in page.text and "line-1-of-four" not in page.text
    listed = await admin.get("/admin/messages/list", params={"page_size": 100})
    assert victim.id not in row_pks(listed.text, "messages")
    assert made[0].id in row_pks(listed.text, "messages")
    shown = await admin.get(
        "/admin/messages/list", params={"filter": "deleted__is_true", "page_size": 100}
    )
    assert row_pks(shown.text, "messages") == {victim.id}
    exported = await admin.get("/admin/conversations/four/export.md?org=acme")
    assert "line-1-of-four" not in exported.text and "line-2-of-four" in exported.text

    detail = await admin.get(f"/admin/messages/detail?pk={victim.id}")
    assert (
        'data-sa-name="restore"' in detail.text and 'data-sa-name="delete"' not in detail.text
    )  # offered as is
    restored = await admin.post(
        "/admin/_api/messages/row-action",
        params={"name": "restore", "pk": victim.id},
        headers={"X-CSRFToken": admin.csrf},
    )
    assert restored.status_code == 200, restored.text
    detail = await admin.get(f"/admin/messages/detail?pk={victim.id}")
    assert 'data-sa-name="restore"' not in detail.text and 'data-sa-name="delete"' in detail.text
    again = await admin.post(
        "/admin/_api/messages/row-action",
        params={"name": "restore", "pk": victim.id},
        headers={"X-CSRFToken": admin.csrf},
    )
    assert again.status_code == 400, again.text  # a live row has nothing to restore
    assert (await Thread.find_one({"thread_id": "four"})).message_count == 4
    await assert_rollups_match_recount("acme", "four")
    entries = await AuditLog.find({"resource_id": victim.message_id}).to_list()
    assert {(e.action, e.resource_type) for e in entries} == {
        ("admin_delete", "message"),
        ("admin_restore", "message"),
    }


async def test_viewer_and_support_cannot_restore(app, login_as):
    _thread, made = await _thread_of_four()
    await messages.soft_delete("acme", made[0].message_id)
    for role in ("viewer", "support"):
        staff = await login_as(role)
        refused = await staff.post(
            "/admin/_api/messages/row-action",
            params={"name": "restore", "pk": made[0].id},
            headers={"X-CSRFToken": staff.csrf},
        )
        assert refused.status_code == 403, role
    assert (await Message.find_one({"_id": made[0].id})).deleted is True


async def test_admin_thread_edit_never_writes_stale_counters(app, login_as):
    admin = await login_as("admin")
    thread, _made = await _thread_of_four()
    form = await admin.get(f"/admin/threads/edit?pk={thread.id}")
    fields = [(k, v) for k, v in form_fields(form.text) if k != "csrftoken"]
    # a message arrives while the admin has the form open
    await messages.append_message("acme", "four", role="user", content="meanwhile")
    fields = [(k, "Renamed" if k == "title" else v) for k, v in fields]
    saved = await admin.form_post(f"/admin/threads/edit?pk={thread.id}", fields)
    assert saved.status_code == 303, saved.text[:300]
    stored = await Thread.find_one({"thread_id": "four"})
    assert stored.title == "Renamed" and stored.message_count == 5 and stored.next_seq == 5
    await assert_rollups_match_recount("acme", "four")


async def test_admin_message_edit_moves_the_counters(app, login_as):
    admin = await login_as("admin")
    _thread, made = await _thread_of_four()
    target = made[2]
    form = await admin.get(f"/admin/messages/edit?pk={target.id}")
    assert form.status_code == 200
    fields = [(k, v) for k, v in form_fields(form.text) if k != "csrftoken"]
    assert ("ai_metadata.total_tokens", "3") in fields
    fields = [(k, "30" if k == "ai_metadata.total_tokens" else v) for k, v in fields]
    saved = await admin.form_post(f"/admin/messages/edit?pk={target.id}", fields)
    assert saved.status_code == 303, saved.text[:500]
    stored = await Thread.find_one({"thread_id": "four"})
    assert stored.total_tokens == 3 * 3 + 30
    await assert_rollups_match_recount("acme", "four")


async def test_list_exports_are_audited(app, login_as):
    admin = await login_as("admin")
    await _thread_of_four()
    exported = await admin.post(
        "/admin/_api/users/action",
        params={"name": "export"},
        data={"format": "csv", "scope": "page"},
        headers={"X-CSRFToken": admin.csrf},
    )
    assert exported.status_code == 200, exported.text[:300]
    assert "acme-user-1" in exported.text
    entry = await AuditLog.find_one({"action": "list_exported", "actor_id": admin.username})
    assert entry is not None and entry.resource_type == "user"
    assert entry.metadata["format"] == "csv" and entry.actor_type == "admin"


async def test_the_realtime_page_shows_presence_rooms_and_streams_in_scope(
    app, client, make_key, login_as
):
    h = await make_key("acme", "ingest", "read")
    await make_thread("acme", "acme-user-1", "rt-thread")
    away = {"status": "away", "session_id": "sess-acme-1"}
    await client.put("/api/v1/presence/acme-user-1", json=away, headers=h)
    await client.post("/api/v1/threads/rt-thread/messages",
                      json={"role": "user", "content": "hello"}, headers=h)  # fmt: skip
    admin = await login_as("admin")
    page = await admin.get("/admin/realtime")
    assert page.status_code == 200, page.text[:300]
    assert "acme-user-1" in page.text and "away" in page.text
    assert "rt-thread" in page.text  # its event stream holds the message's event
    assert "sess-acme-1" in page.text  # the session hash
    other = await login_as("admin", org_id="globex")
    scoped = await other.get("/admin/realtime")
    assert scoped.status_code == 200 and "acme-user-1" not in scoped.text
    assert "sess-acme-1" not in scoped.text
