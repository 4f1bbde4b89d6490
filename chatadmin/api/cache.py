"""`/cache`: store and look up analysis results by question and parameters."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatadmin.api.auth import record
from chatadmin.api.http import read_json, respond
from chatadmin.api.spec import Endpoint
from chatadmin.models import CacheEntry
from chatadmin.models.cache import CacheHit, CacheLookup, CachePut, CacheStored
from chatadmin.services import cache


async def put(request: Request) -> Response:
    key = request.state.api_key
    body = await read_json(request, CachePut)
    ttl = body.ttl_seconds or request.app.state.settings.chatadmin_cache_ttl_seconds
    entry = await cache.put(
        key.org_id,
        body.question,
        body.parameters,
        body.result,
        ttl_seconds=ttl,
        analysis_id=body.analysis_id,
    )
    await record(
        request,
        "cache_stored",
        CacheEntry,
        entry.cache_key,
        after={"expires_at_ms": entry.expires_at_ms},
    )
    return respond(CacheStored(cache_key=entry.cache_key, expires_at=entry.expires_at))


async def lookup(request: Request) -> Response:
    key = request.state.api_key
    body = await read_json(request, CacheLookup)
    entry = await cache.lookup(key.org_id, body.question, body.parameters)
    if entry is None:
        return respond({"hit": False})
    return respond(
        CacheHit(
            hit=True,
            result=entry.result,
            cache_key=entry.cache_key,
            hit_count=entry.hit_count,
            expires_at=entry.expires_at,
        )
    )


ENDPOINTS = [
    Endpoint(
        "PUT",
        "/cache",
        put,
        "Cache a result for a question and parameters",
        "cache",
        scope="ingest",
        body=CachePut,
        response=CacheStored,
        errors=(401, 403, 413, 415, 422),
    ),
    Endpoint(
        "POST",
        "/cache/lookup",
        lookup,
        "Look up a cached result",
        "cache",
        body=CacheLookup,
        response=CacheHit,
        errors=(401, 403, 413, 415, 422),
    ),
]
