"""`POST /ingest`: idempotent batches of events; 200 when all succeeded, 207 when any failed."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chatadmin.api.auth import authorize, client_ip
from chatadmin.api.http import read_json, respond
from chatadmin.api.spec import Endpoint
from chatadmin.exceptions import TooLarge
from chatadmin.services.ingest import BatchIn, BatchOut, Context, ingest


async def ingest_batch(request: Request) -> Response:
    key = await authorize(request, "ingest")
    settings = request.app.state.settings
    batch = await read_json(request, BatchIn)
    if len(batch.events) > settings.chatadmin_max_batch:
        raise TooLarge(
            f"a batch holds at most {settings.chatadmin_max_batch} events; "
            f"this one has {len(batch.events)}"
        )
    ctx = Context(
        org_id=key.org_id,
        actor_id=key.key_id,
        max_message_bytes=settings.chatadmin_max_message_bytes,
        ip_address=client_ip(request),
        user_agent=(request.headers.get("user-agent") or "")[:1000] or None,
    )
    results = await ingest(ctx, batch.events)
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
