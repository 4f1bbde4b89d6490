"""`/audit`: the audit trail of the key's org (needs the `admin` scope), without the actions
of chatadmin's staff; reported (ingested) entries say so and name the key that sent them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatadmin.api.http import read_query, respond
from chatadmin.api.spec import Endpoint
from chatadmin.models.audit import AuditOut, AuditQuery
from chatadmin.services import audit


async def list_audit(request: Request) -> Response:
    key = request.state.api_key
    q = read_query(request, AuditQuery)
    page = await audit.list_entries(
        key.org_id,
        resource_type=q.resource_type,
        resource_id=q.resource_id,
        action=q.action,
        actor_id=q.actor_id,
        since=q.since,
        limit=q.limit,
        cursor=q.cursor,
        tenant=True,
    )
    items = [AuditOut.model_validate(e).model_dump(mode="json") for e in page.items]
    return respond({"items": items, "next_cursor": page.next_cursor})


ENDPOINTS = [
    Endpoint(
        "GET",
        "/audit",
        list_audit,
        "Audit entries, newest first",
        "audit",
        scope="admin",
        query=AuditQuery,
        response=AuditOut,
        many=True,
        errors=(401, 403, 422),
    ),
]
