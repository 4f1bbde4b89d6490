"""The audit log writer (append-only: there is no update or delete here) and its reader."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chatadmin.clock import to_ms
from chatadmin.models import AuditLog
from chatadmin.services.pagination import Page, clamp_limit, decode_cursor, encode_cursor


def diff(before: dict | None, after: dict | None) -> dict[str, list[Any]]:
    """Field-level changes as `{field: [old, new]}`."""
    before, after = before or {}, after or {}
    return {
        key: [before.get(key), after.get(key)]
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


async def record(
    org_id: str,
    *,
    actor_type: str,
    actor_id: str,
    action: str,
    resource_type: str,
    resource_id: str | None = None,
    before: dict | None = None,
    after: dict | None = None,
    changes: dict | None = None,
    ip_address: str | None = None,
    user_agent: str | None = None,
    success: bool = True,
    error_message: str | None = None,
    metadata: dict | None = None,
) -> AuditLog:
    """Append one audit entry; changes are computed from before/after when not given."""
    if changes is None and (before is not None or after is not None):
        changes = diff(before, after)
    entry = AuditLog(
        org_id=org_id,
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        before=before,
        after=after,
        changes=changes,
        ip_address=ip_address,
        user_agent=user_agent,
        success=success,
        error_message=error_message,
        metadata=metadata or {},
    )
    await entry.insert()
    return entry


async def list_entries(
    org_id: str,
    *,
    resource_type: str | None = None,
    resource_id: str | None = None,
    action: str | None = None,
    actor_id: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[AuditLog]:
    """Newest first, filtered by plain equality (client values never become operators)."""
    limit = clamp_limit(limit, 50)
    query: dict[str, Any] = {"org_id": org_id}
    for key, value in (
        ("resource_type", resource_type),
        ("resource_id", resource_id),
        ("action", action),
        ("actor_id", actor_id),
    ):
        if value is not None:
            query[key] = str(value)
    if since is not None:
        query["created_at_ms"] = {"$gte": to_ms(since)}
    pos = decode_cursor(cursor, {"ms": int, "id": str})
    if pos:
        query["$or"] = [
            {"created_at_ms": {"$lt": pos["ms"]}},
            {"created_at_ms": pos["ms"], "audit_id": {"$lt": pos["id"]}},
        ]
    found = (
        await AuditLog.find(query)
        .sort([("created_at_ms", -1), ("audit_id", -1)])
        .limit(limit + 1)
        .to_list()
    )
    nxt = None
    if len(found) > limit:
        found = found[:limit]
        nxt = encode_cursor({"ms": found[-1].created_at_ms, "id": found[-1].audit_id})
    return Page(found, nxt)
