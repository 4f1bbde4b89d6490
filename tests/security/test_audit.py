"""The tenant API's audit trail holds no staff data, and audit events a backend reports are
kept as reports: marked as ingested, naming the key that sent them, shown apart."""

from __future__ import annotations

import json

from chatadmin.models import AuditLog
from tests.admin.pages import row_pks


def _forged(audit_id: str) -> dict:
    return {
        "type": "audit",
        "id": audit_id,
        "data": {
            "actor_type": "admin",
            "actor_id": "root",
            "action": "admin_user_created",
            "resource_type": "admin_user",
            "ip_address": "10.0.0.1",
        },
    }


async def test_a_reported_audit_event_is_stored_as_a_report(app, client, make_key, login_as):
    h = await make_key("acme", "ingest", "admin")
    key_id = h["Authorization"].split("_")[1]
    r = await client.post("/api/v1/ingest", json={"events": [_forged("forged-1")]}, headers=h)
    assert r.status_code == 200, r.text
    stored = await AuditLog.find_one({"audit_id": "forged-1"})
    assert stored.source == "ingest" and stored.source_key_id == key_id
    admin = await login_as("admin")
    staff_view = await admin.get("/admin/audit-logs/list", params={"page_size": 100})
    assert str(stored.id) not in row_pks(staff_view.text, "audit-logs")
    reported = await admin.get("/admin/reported-audit/list", params={"page_size": 100})
    assert str(stored.id) in row_pks(reported.text, "reported-audit")
    listed = await client.get("/api/v1/audit", params={"action": "admin_user_created"}, headers=h)
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [(i["audit_id"], i["source"], i["source_key_id"]) for i in items] == [
        ("forged-1", "ingest", key_id)
    ]


async def test_staff_actions_stay_out_of_the_tenant_api(app, client, make_key, login_as, block):
    support = await login_as("support")
    thread = block["thread"]
    page = await support.get(f"/admin/conversations/{thread.thread_id}?org=acme")
    assert page.status_code == 200
    note = "customer is a VIP, handle with care"
    added = await support.form_post(
        f"/admin/conversations/{thread.thread_id}/notes?org=acme", {"note": note}
    )
    assert added.status_code == 303
    staff_entry = await AuditLog.find_one({"action": "note_added", "actor_id": support.username})
    assert staff_entry is not None and staff_entry.org_id == "acme"
    # a legacy entry written before `source` existed
    await AuditLog.get_pymongo_collection().insert_one(
        {
            "_id": "1e9ac1e9ac1e9ac1e9ac",
            "org_id": "acme",
            "audit_id": "1e9ac1e9ac1e9ac1e9ac",
            "actor_type": "admin",
            "actor_id": "old-staffer",
            "action": "thread_edited",
            "resource_type": "thread",
            "created_at_ms": staff_entry.created_at_ms,
            "updated_at_ms": staff_entry.created_at_ms,
        }
    )
    h = await make_key("acme", "admin", "ingest")
    user = {"type": "user", "id": "audit-visible-user", "data": {"username": "visible"}}
    assert (
        await client.post("/api/v1/ingest", json={"events": [user]}, headers=h)
    ).status_code == 200
    seen, cursor = [], None
    for _ in range(50):
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/api/v1/audit", params=params, headers=h)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    text = json.dumps(seen)
    assert [i for i in seen if i["resource_id"] == "audit-visible-user"]  # the org's own writes
    assert note not in text and support.username not in text and "old-staffer" not in text
    assert not [i for i in seen if i["actor_type"] == "admin" and i["source"] != "ingest"]
    # staff still see both entries in the admin
    admin = await login_as("admin")
    listed = await admin.get(
        "/admin/audit-logs/list", params={"page_size": 100, "q": "old-staffer"}
    )
    assert "1e9ac1e9ac1e9ac1e9ac" in row_pks(listed.text, "audit-logs")
