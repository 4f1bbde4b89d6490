"""The audit log: one writer (`record`, append-only: there is no update or delete here) that
every door calls with an `Actor` and a `Resource`, so entries name things one way everywhere,
and its reader.

Resource types are the `RESOURCE` of each Document (`thread`, `message`, `user`, ...) and the
resource id is its client-visible id (`thread_id`, `message_id`, ...), whichever door wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chatadmin.clock import to_ms, utcnow
from chatadmin.models import AuditLog
from chatadmin.models.base import TimestampedDocument
from chatadmin.services.pagination import Page, clamp_limit, decode_cursor, encode_cursor

ALL_ORGS = "all-orgs"  # the org of entries by staff that no single org owns


@dataclass(frozen=True)
class Actor:
    """Who did it: an API key, an admin user, a user of the chat app, or the system."""

    type: str
    id: str
    ip_address: str | None = None
    user_agent: str | None = None
    via: str | None = None  # the door: "api", "ingest", "admin", "cli"

    @classmethod
    def of_request(cls, request: Any, type: str, id: str, via: str) -> Actor:
        """An actor acting through an HTTP request: its client address and user agent."""
        return cls(
            type,
            id,
            ip_address=request.client.host if request.client else None,
            user_agent=(request.headers.get("user-agent") or "")[:1000] or None,
            via=via,
        )


@dataclass(frozen=True)
class Resource:
    """What it was done to."""

    type: str
    id: str | None = None
    org_id: str = ALL_ORGS


def resource(doc: TimestampedDocument | type[TimestampedDocument], rid: Any = None) -> Resource:
    """The resource a document (or a kind of document, with an id) stands for."""
    if rid is None and not isinstance(doc, type):
        rid = getattr(doc, doc.RESOURCE_KEY, None)
    org = None if isinstance(doc, type) else getattr(doc, "org_id", None)
    return Resource(doc.RESOURCE, None if rid is None else str(rid), org or ALL_ORGS)


# What an org's API key may read: everything but the actions of chatadmin's own staff.
TENANT_VISIBLE = {"$or": [{"source": "ingest"}, {"actor_type": {"$ne": "admin"}}]}


def diff(before: dict | None, after: dict | None) -> dict[str, list[Any]]:
    """Field-level changes as `{field: [old, new]}`."""
    before, after = before or {}, after or {}
    return {
        key: [before.get(key), after.get(key)]
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def entry(
    actor: Actor,
    action: str,
    resource: Resource,
    before: dict | None = None,
    after: dict | None = None,
    *,
    success: bool = True,
    error_message: str | None = None,
    metadata: dict | None = None,
    org_id: str | None = None,
    changes: dict | None = None,
) -> AuditLog:
    """One audit entry, not yet stored; changes are computed from before/after unless given."""
    if changes is None and (before is not None or after is not None):
        changes = diff(before, after)
    meta = dict(metadata or {})
    if actor.via:
        meta.setdefault("via", actor.via)
    return AuditLog(
        org_id=org_id or resource.org_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action=action,
        resource_type=resource.type,
        resource_id=resource.id,
        before=before,
        after=after,
        changes=changes,
        ip_address=actor.ip_address,
        user_agent=actor.user_agent,
        success=success,
        error_message=error_message,
        metadata=meta,
        created_at=utcnow(),
    ).stamped()


async def record(
    actor: Actor,
    action: str,
    resource: Resource,
    before: dict | None = None,
    after: dict | None = None,
    **options: Any,
) -> AuditLog:
    """Append one audit entry (options: those of `entry`)."""
    found = entry(actor, action, resource, before, after, **options)
    await AuditLog.get_pymongo_collection().insert_one(found.storage_fields())
    return found


async def record_many(entries: list[AuditLog]) -> None:
    """Append entries built with `entry` in one write (a batch's entries)."""
    if entries:
        await AuditLog.get_pymongo_collection().insert_many(
            [e.storage_fields() for e in entries], ordered=False
        )


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
    tenant: bool = False,
) -> Page[AuditLog]:
    """Newest first, filtered by plain equality (client values never become operators).
    For a tenant (an org's API key), staff actions stay out: they carry staff usernames,
    addresses and notes."""
    limit = clamp_limit(limit, 50)
    query: dict[str, Any] = {"org_id": org_id}
    conditions = [TENANT_VISIBLE] if tenant else []
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
        conditions.append(
            {
                "$or": [
                    {"created_at_ms": {"$lt": pos["ms"]}},
                    {"created_at_ms": pos["ms"], "audit_id": {"$lt": pos["id"]}},
                ]
            }
        )
    if conditions:
        query["$and"] = conditions
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
