"""Every query the product sends on a hot path carries the shard key's prefix, `org_id`
(docs/scaling.md: a sharded cluster keys every tenant collection by `org_id` first, so such
queries stay targeted to one shard). The commands are recorded as the app sends them."""

from __future__ import annotations

from chatadmin.models import DOCUMENT_MODELS
from chatadmin.models.base import TenantDocument
from tests.commands import RECORDER
from tests.factories import make_thread

TENANT = {m.Settings.name for m in DOCUMENT_MODELS if issubclass(m, TenantDocument)}


def _sweep(query: dict) -> bool:
    """The expiry sweeper's deletes: a background scan across orgs, not a hot path (on a
    sharded cluster a broadcast once a minute)."""
    return set(query) == {"expires_at_ms"}


def _has_org(query: dict) -> bool:
    if "org_id" in query:
        return True
    return any(_has_org(part) for part in query.get("$and", []) if isinstance(part, dict))


async def _hot_paths(client, make_key, login_as) -> None:
    h = await make_key("acme", "ingest", "read", "share")
    events = [
        {"type": "user", "id": "u1", "data": {"username": "u1"}},
        {"type": "thread", "id": "t1", "data": {"user_id": "u1", "title": "hot"}},
    ]
    events += [{"type": "message", "id": f"m{i}",
                "data": {"thread_id": "t1", "user_id": "u1", "role": "user", "content": f"q {i}"}}
               for i in range(5)]  # fmt: skip
    assert (
        await client.post("/api/v1/ingest", json={"events": events}, headers=h)
    ).status_code == 200
    said = {"role": "assistant", "content": "an answer"}
    appended = await client.post("/api/v1/threads/t1/messages", json=said, headers=h)
    assert appended.status_code == 201, appended.text
    for path in (
        "/api/v1/threads",
        "/api/v1/threads/t1",
        "/api/v1/threads/t1/context",
        "/api/v1/users/u1",
        "/api/v1/users/u1/questions",
    ):
        r = await client.get(path, headers=h)
        assert r.status_code == 200, (path, r.text)  # fmt: skip
    fb = {"is_helpful": True, "rating": 5}
    assert (
        await client.post("/api/v1/messages/m1/feedback", json=fb, headers=h)
    ).status_code == 200
    staff = await login_as("support", org_id="acme")
    assert (await staff.get("/admin/conversations/t1?org=acme")).status_code == 200
    assert (await staff.get("/admin/threads/list")).status_code == 200
    assert (await staff.get("/admin/messages/list")).status_code == 200


async def test_every_hot_path_query_names_the_org(app, client, make_key, login_as):
    await make_thread("acme", "u0", "warm-up")
    with RECORDER.recording() as sent:
        await _hot_paths(client, make_key, login_as)
    tenant = [s for s in sent if s.collection in TENANT]
    assert len(tenant) > 20  # the recorder saw the traffic
    missing = [
        (s.command, s.collection, f)
        for s in tenant
        for f in s.filters
        if not _has_org(f) and not _sweep(f)
    ]
    assert missing == []
