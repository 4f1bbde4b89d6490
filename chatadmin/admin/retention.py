"""`/admin/retention`: the retention policy as configured (seed 004's table, with the cutoffs
it gives today) and the last runs of `manage.py retention`, unit by unit: what was archived,
verified and deleted, where the archive is and its checksum. Read-only: runs start from the
command line (docs/lifecycle.md). A staff user bound to an org sees that org's units only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette_admin import CustomView
from starlette_admin.routing import route

from chatadmin.admin import roles
from chatadmin.clock import from_ms, to_ms, utcnow
from chatadmin.services import retention

RUNS = 20


def _when(ms: int) -> str:
    return from_ms(ms).strftime("%Y-%m-%d %H:%M UTC") if ms else ""


async def page_data(settings, org: str | None) -> dict:
    """The policy, today's cutoffs and the last runs (units of `org` only, when given)."""
    policy = retention.policy_of(settings)
    cut = retention.cutoffs(policy, to_ms(utcnow()))
    runs = []
    for run in await retention.last_runs(RUNS):
        units = [u for u in run.units if org is None or u.org_id == org]
        if org is not None and run.units and not units:
            continue
        runs.append(
            {
                "run_id": run.run_id,
                "status": run.status,
                "started": _when(run.started_at_ms),
                "finished": _when(run.finished_at_ms),
                "reference": _when(run.now_ms),
                "archive": f"{run.archive_dir}/{run.run_id}",
                "archive_removed": _when(run.archive_removed_at_ms),
                "error": run.error,
                "units": [
                    {**u.model_dump(), "what": retention.WHAT[(u.collection, u.action)],
                     "cutoff": _when(u.cutoff_ms)}
                    for u in units
                ],
            }
        )  # fmt: skip
    return {
        "rules": retention.rules(settings),
        "cutoffs": {k: _when(v) for k, v in cut.items()},
        "archive_dir": str(retention.archive_dir(settings)),
        "keep_days": settings.chatadmin_retention_archive_keep_days,
        "runs": runs,
    }


class RetentionView(CustomView):
    """The Retention page (in the Audit menu group)."""

    def __init__(self) -> None:
        super().__init__(
            menu_label="Retention", icon="fa fa-box-archive", path="/retention", add_to_menu=True
        )

    def is_accessible(self, request: Request) -> bool:
        return roles.staff(request) is not None

    @route("", name="retention")
    async def index(self, request: Request) -> Response:
        org = roles.org_scope(request)
        data = await page_data(request.app.state.settings, org)
        return self._admin._template_response(
            request, "retention.html", {"title": "Retention", "scope": org, **data}
        )
