"""API keys on requests: `Authorization: Bearer <key>`, one org, scopes; `admin` implies all.

Verified keys are kept in-process for a few seconds, so a busy ingest client costs one key
lookup per few seconds, not one per request; a revoked key stops working within that time.
"""

from __future__ import annotations

import hashlib
import time

from starlette.requests import Request

from chatadmin.exceptions import Forbidden, Unauthorized
from chatadmin.models import ApiKey
from chatadmin.models.base import TimestampedDocument
from chatadmin.services import accounts, audit

CACHE_SECONDS = 10.0
_verified: dict[str, tuple[ApiKey, float]] = {}


async def _verify(token: str) -> ApiKey | None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    hit = _verified.get(digest)
    now = time.monotonic()
    if hit and hit[1] > now:
        return hit[0]
    key = await accounts.verify_api_key(token)
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
    key = await _verify(token)
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
