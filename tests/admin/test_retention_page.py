"""The Retention page: the policy as configured and the last runs, unit by unit, in the staff
user's org scope."""

from __future__ import annotations

from datetime import timedelta

from chatadmin.clock import utcnow
from chatadmin.services import messages, retention
from tests.factories import make_thread


async def test_the_retention_page_shows_the_policy_and_the_last_runs_in_scope(
    app, login_as, settings, tmp_path
):
    long_ago = utcnow() - timedelta(days=800)
    for org in ("acme", "globex"):
        await make_thread(org, f"{org}-u", f"{org}-ancient", created_at=long_ago)
        await messages.append_message(org, f"{org}-ancient", role="user", content="hi",
                                      created_at=long_ago)  # fmt: skip
    conf = settings.model_copy(update={"chatadmin_retention_archive_dir": tmp_path / "archive"})
    done = await retention.run(conf)
    admin = await login_as("viewer")
    page = await admin.get("/admin/retention")
    assert page.status_code == 200, page.text[:300]
    assert "CHATADMIN_RETENTION_CONVERSATIONS_DAYS" in page.text and "730 days" in page.text
    assert "ChatAnalytics" in page.text and "1825 days" in page.text
    assert done.run_id in page.text and "completed" in page.text
    assert "acme" in page.text and "globex" in page.text
    assert page.text.count("threads to purge") == 2  # one unit per org
    scoped = await (await login_as("support", org_id="globex")).get("/admin/retention")
    assert scoped.status_code == 200 and done.run_id in scoped.text
    assert scoped.text.count("threads to purge") == 1 and ">acme<" not in scoped.text
    assert (await (await login_as("admin")).get("/admin/")).status_code == 200
