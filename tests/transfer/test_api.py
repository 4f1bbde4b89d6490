"""POST /api/v1/import: the same auth, scopes, org isolation, limits and error shape as the
rest of the API, and the import summary as JSON."""

from __future__ import annotations

import gzip
import json

import pytest

from chatadmin.models import AuditLog, Message, Thread
from tests.api.helpers import error
from tests.transfer.conftest import sample, snapshot

pytestmark = pytest.mark.usefixtures("database")
URL = "/api/v1/import"
JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def line(cid: str, text: str = "hi") -> str:
    turns = [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
    return json.dumps({"id": cid, "messages": turns})


async def test_a_sample_imports_with_a_json_summary_and_again_changes_nothing(client, make_key):
    h = await make_key("org-a", "ingest", "read")
    body = sample("chatgpt", "librechat__chatgpt-export.json").read_bytes()
    r = await client.post(URL, content=body, headers={**h, **JSON})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["format"], out["detected"], out["conversations"]) == ("chatgpt", True, 2)
    assert out["threads"]["created"] == 2 and out["messages"]["created"] == 21
    assert out["errors"] == [] and out["skipped"] == []
    listed = await client.get("/api/v1/threads", headers=h)
    assert {t["thread_id"] for t in listed.json()["items"]} == {
        t.thread_id for t in await Thread.find({"org_id": "org-a"}).to_list()}  # fmt: skip
    entries = await AuditLog.find({"org_id": "org-a", "action": "messages_created"}).to_list()
    assert entries and all(e.metadata["via"] == "import" for e in entries)

    again = await client.post(URL, content=body, headers={**h, **JSON})
    assert again.status_code == 200
    assert again.json()["messages"] == {"created": 0, "updated": 0, "unchanged": 21, "valid": None}


async def test_another_orgs_key_sees_nothing_of_it(client, make_key):
    a, b = await make_key("org-a", "ingest", "read"), await make_key("org-b", "ingest", "read")
    r = await client.post(URL, content=line("c1"), headers={**a, **NDJSON})
    assert r.status_code == 200, r.text
    error(await client.get("/api/v1/threads/openai:c1", headers=b), 404, "not_found")
    assert (await client.get("/api/v1/threads/openai:c1", headers=a)).status_code == 200
    r = await client.post(URL, content=line("c1"), headers={**b, **NDJSON})  # its own copy
    assert r.json()["threads"]["created"] == 1
    assert await Thread.find({"thread_id": "openai:c1"}).count() == 2


async def test_some_bad_conversations_answer_207_naming_each_position(client, make_key):
    h = await make_key("org-a", "ingest")
    body = "\n".join([line("c1"), "{broken", line("c3")])
    r = await client.post(URL, content=body, headers={**h, **NDJSON})
    assert r.status_code == 207, r.text
    out = r.json()
    assert out["threads"]["created"] == 2
    assert [e["position"] for e in out["errors"]] == ["body: line 2"]


async def test_gzip_bodies_dry_runs_and_named_formats(client, make_key):
    h = await make_key("org-a", "ingest")
    before = await snapshot(exclude_audit=True)
    body = gzip.compress(line("c1").encode())
    dry = await client.post(f"{URL}?dry_run=true&format=openai&user_id=ann", content=body,
                            headers={**h, "Content-Type": "application/gzip"})  # fmt: skip
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True and dry.json()["messages"]["valid"] == 2
    assert await snapshot(exclude_audit=True) == before
    r = await client.post(f"{URL}?user_id=ann", content=body, headers={**h, **NDJSON})
    assert r.status_code == 200 and r.json()["detected"] is True
    assert (await Thread.find_one({"thread_id": "openai:c1"})).user_id == "ann"
    assert await Message.find({"org_id": "org-a"}).count() == 2


async def test_auth_scope_and_bad_input_answer_the_api_errors(client, make_key, settings):
    reader = await make_key("org-a", "read")
    h = await make_key("org-a", "ingest")
    error(await client.post(URL, content=line("c1"), headers=NDJSON), 401, "unauthorized")
    error(await client.post(URL, content=line("c1"), headers={**reader, **NDJSON}), 403)
    error(await client.post(URL, content=line("c1"), headers={**h, "Content-Type": "text/plain"}),
          415, "unsupported_media_type")  # fmt: skip
    error(await client.post(URL, content=b"", headers={**h, **JSON}), 400, "bad_request")
    error(await client.post(URL, content=b"[{]", headers={**h, **JSON}), 400, "bad_request")
    err = error(await client.post(URL, content=b'{"foo": 1}', headers={**h, **JSON}), 422)
    assert "cannot recognise the format" in err["message"] and err["details"]
    err = error(await client.post(URL, content=b"[1]", headers={**h, **JSON}), 422, "invalid")
    error(await client.post(f"{URL}?format=bogus", content=line("c"), headers={**h, **NDJSON}), 422)
    error(await client.post(f"{URL}?user_id=$bad", content=line("c"), headers={**h, **NDJSON}), 422)
    big = b" " * (settings.chatadmin_max_body_bytes + 1)
    error(await client.post(URL, content=big, headers={**h, **JSON}), 413, "too_large")
    bomb = gzip.compress(b"[" + b" " * (settings.chatadmin_max_body_bytes * 10) + b"]")
    assert len(bomb) < settings.chatadmin_max_body_bytes
    error(await client.post(URL, content=bomb, headers={**h, **JSON}), 413, "too_large")
    assert await Thread.find({}).count() == 0
    error(await client.get(URL, headers=h), 405)
