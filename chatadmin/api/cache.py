"""`/cache`: store and look up analysis results by question and parameters."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatadmin.api.auth import record
from chatadmin.api.http import read_json, respond
from chatadmin.api.spec import Endpoint
from chatadmin.clock import now_ms
from chatadmin.models import CacheEntry
from chatadmin.models.cache import CacheHit, CacheLookup, CachePut, CacheStored
from chatadmin.realtime import caches
from chatadmin.services import cache


async def put(request: Request) -> Response:
    key = request.state.api_key
    body = await read_json(request, CachePut)
    ttl = body.ttl_seconds or request.app.state.settings.chatadmin_cache_ttl_seconds
    await caches.ai_drop(request.app.state.realtime, key.org_id, cache.cache_key(
        body.question, body.parameters))  # fmt: skip
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
    rt = request.app.state.realtime
    ck = cache.cache_key(body.question, body.parameters)
    fast = await caches.ai_get(rt, key.org_id, ck)
    if fast is not None:  # Redis first: the result without reading it from MongoDB
        count = await cache.count_hit(key.org_id, ck)
        if count is not None:
            return respond(CacheHit.model_validate({**fast, "hit": True, "hit_count": count}))
        await caches.ai_drop(rt, key.org_id, ck)  # gone from MongoDB meanwhile
    entry = await cache.lookup(key.org_id, body.question, body.parameters)
    if entry is None:
        return respond({"hit": False})
    hit = CacheHit(
        hit=True,
        result=entry.result,
        cache_key=entry.cache_key,
        hit_count=entry.hit_count,
        expires_at=entry.expires_at,
    )
    left_s = (entry.expires_at_ms - now_ms()) // 1000
    await caches.ai_put(rt, key.org_id, ck, hit.model_dump(mode="json"), left_s)
    return respond(hit)


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
