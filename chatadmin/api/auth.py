"""API keys on requests: `Authorization: Bearer <key>`, one org, scopes; `admin` implies all.

Verified keys are kept in-process for a few seconds, so a busy ingest client costs one key
lookup per few seconds, not one per request; a revoked key stops working within that time.
While MongoDB is unreachable, a key verified in the last hour keeps working (its writes go to
the spool); an unknown one gets 503.
"""

from __future__ import annotations

import hashlib
import time

from starlette.requests import Request

from chatadmin.exceptions import Forbidden, Unauthorized
from chatadmin.models import ApiKey
from chatadmin.models.base import TimestampedDocument
from chatadmin.outage import DATABASE_DOWN, Outage
from chatadmin.services import accounts, audit

CACHE_SECONDS = 10.0
# MongoDB down: a key verified within this long keeps working, so its writes can be spooled.
STALE_SECONDS = 3600.0
_verified: dict[str, tuple[ApiKey, float]] = {}


async def _verify(token: str, outage: Outage | None = None) -> ApiKey | None:
    """The key of `token`. While MongoDB is down (`outage`), a key verified lately is taken as
    it was rather than paying the database's timeout again; a lookup that fails marks it down,
    so the rest of the request (a write goes to the spool) does not wait a second time."""
    down = outage is not None and outage.down
    digest = hashlib.sha256(token.encode()).hexdigest()
    hit = _verified.get(digest)
    now = time.monotonic()
    if hit and hit[1] > now:
        return hit[0]
    if down and hit and hit[1] - CACHE_SECONDS + STALE_SECONDS > now:
        return hit[0]
    try:
        key = await accounts.verify_api_key(token)
    except DATABASE_DOWN as exc:
        if outage is not None:
            outage.failed(exc)
        if hit and hit[1] - CACHE_SECONDS + STALE_SECONDS > now:
            return hit[0]
        raise
    if key is not None:
        if len(_verified) > 10_000:
            _verified.clear()
        _verified[digest] = (key, now + CACHE_SECONDS)
    return key


def forget_keys() -> None:
    """Drop cached verifications (after a revoke in this process)."""
    _verified.clear()


async def authorize(request: Request, scope: str) -> ApiKey:
    """The request's API key if it is valid and holds `scope`; else 401 or 403."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    key = await _verify(token, getattr(request.app.state, "outage", None))
    if key is None:
        raise Unauthorized("the API key is not valid")
    if scope not in key.scopes and "admin" not in key.scopes:
        raise Forbidden(f"this API key does not have the {scope!r} scope")
    request.state.api_key = key
    return key


def actor(request: Request) -> audit.Actor:
    """The API key of the request as the actor of its writes."""
    key: ApiKey = request.state.api_key
    return audit.Actor.of_request(request, "api_key", key.key_id, via="api")


async def record(
    request: Request,
    action: str,
    kind: type[TimestampedDocument],
    resource_id: str | None,
    *,
    before: dict | None = None,
    after: dict | None = None,
) -> None:
    """The audit entry of a write made through the API, naming the key."""
    key: ApiKey = request.state.api_key
    target = audit.Resource(kind.RESOURCE, resource_id, key.org_id)
    await audit.record(actor(request), action, target, before, after)
