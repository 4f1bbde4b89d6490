"""`POST /ingest`: idempotent batches of events; 200 when all succeeded, 207 when any failed."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response

from chatadmin.api.auth import actor
from chatadmin.api.http import read_json, respond
from chatadmin.api.spec import Endpoint
from chatadmin.exceptions import TooLarge
from chatadmin.services.ingest import Batch, BatchIn, BatchOut, ingest


async def ingest_batch(request: Request) -> Response:
    key = request.state.api_key
    settings = request.app.state.settings
    body = await read_json(request, BatchIn)
    if len(body.events) > settings.chatadmin_max_batch:
        raise TooLarge(
            f"a batch holds at most {settings.chatadmin_max_batch} events; "
            f"this one has {len(body.events)}"
        )
    state = Batch(
        org_id=key.org_id,
        actor=replace(actor(request), via="ingest"),
        max_message_bytes=settings.chatadmin_max_message_bytes,
        context_ttl_days=settings.chatadmin_context_ttl_days,
        limiter=request.app.state.limiter,
    )
    results = await ingest(state, body.events)
    status = 207 if any(r.status == "error" for r in results) else 200
    return respond(BatchOut(results=results), status)


ENDPOINTS = [
    Endpoint(
        "POST",
        "/ingest",
        ingest_batch,
        "Ingest a batch of events (idempotent by id; per-event results)",
        "ingest",
        scope="ingest",
        body=BatchIn,
        response=BatchOut,
        also=(207,),
    ),
]
