"""The admin's index page: collection counts and 30-day charts read from the `chat_analytics`
day buckets kept at write time (never a scan of messages), so it costs the same at any scale."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette_admin import CustomView
from starlette_admin.routing import route

from chatadmin.admin import roles
from chatadmin.admin.base import COUNT_CAP, CappedCount
from chatadmin.admin.estimates import estimated_count
from chatadmin.clock import day_start, utcnow
from chatadmin.models import DOCUMENT_MODELS, DailyAnalytics
from chatadmin.models.analytics import COUNTERS, ORG_WIDE
from chatadmin.services import analytics

DAYS = 30
COUNTED = {
    "chat_sessions": "Threads",
    "chat_messages": "Messages",
    "users": "Users",
    "analyses": "Analyses",
    "executions": "Executions",
    "audit_logs": "Audit entries",
}


async def collection_counts(request: Request) -> list[tuple[str, str, int]]:
    """Counts per collection: estimated unscoped, capped when scoped to an org."""
    scope = roles.scope_query(request)
    out = []
    for model in DOCUMENT_MODELS:
        name = model.Settings.name
        if name not in COUNTED:
            continue
        coll = model.get_pymongo_collection()
        if not scope:
            out.append((name, COUNTED[name], await estimated_count(coll)))
            continue
        found = len(await coll.find(scope, {"_id": 1}).limit(COUNT_CAP + 1).to_list())
        out.append((name, COUNTED[name], CappedCount(found) if found > COUNT_CAP else found))
    return out


async def series(request: Request) -> dict:
    """Per-day totals over the last 30 days (summed over orgs when not scoped)."""
    end = day_start(utcnow())
    start = end - timedelta(days=DAYS - 1)
    query = {
        "user_id": ORG_WIDE,
        **roles.scope_query(request),
        "period_start_ms": {"$gte": int(start.timestamp() * 1000)},
    }
    days = [start + timedelta(days=i) for i in range(DAYS)]
    totals = {d.strftime("%Y-%m-%d"): dict.fromkeys(COUNTERS, 0) for d in days}
    async for bucket in DailyAnalytics.find(query):
        if bucket.period_key in totals:
            for name in COUNTERS:
                totals[bucket.period_key][name] += getattr(bucket, name)
    summed = {name: sum(day[name] for day in totals.values()) for name in COUNTERS}
    return {"labels": list(totals), "days": list(totals.values()), "summed": summed}


async def top_users(request: Request) -> list[tuple[str, int]]:
    end = utcnow()
    org = roles.org_scope(request)
    if org:
        return await analytics.top_users(org, end - timedelta(days=DAYS - 1), end, limit=8)
    start_ms = int(day_start(end - timedelta(days=DAYS - 1)).timestamp() * 1000)
    totals: dict[str, int] = {}
    query = {"user_id": {"$ne": ORG_WIDE}, "period_start_ms": {"$gte": start_ms}}
    async for b in DailyAnalytics.find(query).limit(20_000):
        totals[f"{b.org_id}/{b.user_id}"] = totals.get(f"{b.org_id}/{b.user_id}", 0) + b.messages
    return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:8]


class Dashboard(CustomView):
    """The index page of the admin."""

    def __init__(self) -> None:
        super().__init__(menu_label="Dashboard", icon="fa fa-gauge", path="/", add_to_menu=True)

    @route("", name="index")
    async def index(self, request: Request) -> Response:
        data = await series(request)
        summed = data["summed"]
        rated = summed["rating_count"]
        users = await top_users(request)  # user ids, not personal data: shown like in lists
        return self._admin._template_response(
            request,
            "dashboard.html",
            {
                "title": "Dashboard",
                "counts": await collection_counts(request),
                "chart": {
                    "labels": data["labels"],
                    "messages": [d["messages"] for d in data["days"]],
                    "tokens": [d["tokens_total"] for d in data["days"]],
                    "errors": [d["errors"] for d in data["days"]],
                    "executions": [summed["executions_success"], summed["executions_failed"]],
                    "feedback": [summed["helpful_count"], summed["unhelpful_count"]],
                    "users": [u for u, _ in users],
                    "user_messages": [n for _, n in users],
                },
                "summed": summed,
                "mean_rating": (summed["rating_sum"] / rated) if rated else None,
                "scope": roles.org_scope(request),
            },
        )
