"""List exports: JSON columns as JSON, spreadsheet formulas neutralised, the row cap checked
against the rows themselves, streamed, and audited."""

from __future__ import annotations

import csv
import io
import json

from chatadmin.admin import views
from chatadmin.admin.exports import csv_cell
from chatadmin.models import AuditLog
from tests.factories import make_user


async def _export(staff, key: str, fmt: str, scope: str = "all", query: str = ""):
    return await staff.post(
        f"/admin/_api/{key}/action",
        params={"name": "export", "_list_query": query, **({"all": "1"} if scope == "all" else {})},
        data={"scope": scope, "format": fmt},
        headers={"X-CSRFToken": staff.csrf},
    )


async def test_csv_cells_are_json_and_formulas_are_neutralised(app, login_as):
    await make_user(
        "acme",
        "formula-user",
        display_name='=HYPERLINK("http://evil.example","click")',
        username="+cmd|' /C calc'!A0",
        metadata={"plan": "pro", "seats": 3},
        preferences={"theme": "dark"},
    )
    admin = await login_as("admin")
    answer = await _export(admin, "users", "csv", query="?filter=" + 'user_id__eq="formula-user"')
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 1
    row = rows[0]
    names = {k.lower().replace(" ", "_"): v for k, v in row.items()}
    assert names["display_name"].startswith("'=HYPERLINK")
    assert names["username"].startswith("'+cmd")
    assert json.loads(names["metadata"]) == {"plan": "pro", "seats": 3}
    assert json.loads(names["preferences"]) == {"theme": "dark"}
    entry = await AuditLog.find_one({"action": "list_exported", "actor_id": admin.username})
    assert entry is not None and entry.metadata["format"] == "csv"


async def test_json_exports_keep_structures(app, login_as):
    await make_user("acme", "json-user", metadata={"nested": {"a": [1, 2]}})
    admin = await login_as("admin")
    answer = await _export(admin, "users", "json", query="?filter=" + 'user_id__eq="json-user"')
    assert answer.status_code == 200
    rows = json.loads(answer.text)
    assert [r["metadata"] for r in rows] == [{"nested": {"a": [1, 2]}}]


def test_csv_cell_rules():
    assert csv_cell("=1+1") == "'=1+1" and csv_cell("-2") == "'-2" and csv_cell("@x") == "'@x"
    assert csv_cell("\t=x") == "'\t=x" and csv_cell("plain") == "plain"
    assert csv_cell(None) == "" and csv_cell(3) == 3
    assert csv_cell([1, "a"]) == '[1, "a"]'


async def test_the_row_cap_counts_rows_not_the_capped_count(app, login_as, monkeypatch):
    for i in range(30):
        await make_user("acme", f"cap-user-{i:02d}")
    monkeypatch.setattr(app.state.settings, "chatadmin_export_max_rows", 20)
    monkeypatch.setattr(views.UserView, "count_cap", 10)  # the list shows "10+"
    admin = await login_as("admin")
    org_filter = "?filter=" + 'org_id__eq="acme"'
    refused = await _export(admin, "users", "csv", query=org_filter)
    assert refused.status_code == 303  # back to the list, with the reason flashed
    assert "text/csv" not in refused.headers.get("content-type", "")
    # an org-bound admin, unfiltered: the org scope is a filter too
    bound = await login_as("admin", org_id="acme")
    assert (await _export(bound, "users", "csv")).status_code == 303
    # within the cap, it exports exactly the rows
    monkeypatch.setattr(app.state.settings, "chatadmin_export_max_rows", 30)
    ok = await _export(admin, "users", "csv", query=org_filter)
    assert ok.status_code == 200
    assert len(list(csv.DictReader(io.StringIO(ok.text)))) == 30


async def test_a_viewer_export_is_masked_and_cannot_sort_by_masked_fields(app, login_as):
    await make_user("acme", "masked-user", email="secret.person@acme.example")
    viewer = await login_as("viewer")
    answer = await _export(viewer, "users", "csv")
    assert answer.status_code == 200
    assert "secret.person@acme.example" not in answer.text
    probe = await _export(viewer, "users", "csv", query="?sort=email__asc")
    assert probe.status_code in (303, 400)
    assert "secret.person" not in probe.text


async def test_api_key_scopes_read_as_words(app, login_as):
    from chatadmin.services import accounts

    await accounts.create_api_key("acme", ["ingest", "read"], name="words-key")
    admin = await login_as("admin")
    page = await admin.get("/admin/api-keys/list")
    assert page.status_code == 200
    assert "ingest, read" in page.text and "[&#39;ingest&#39;" not in page.text
