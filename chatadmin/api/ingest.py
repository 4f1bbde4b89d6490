"""`POST /ingest`: idempotent batches of events; 200 when all succeeded, 207 when any failed,
202 when MongoDB was unreachable and the batch went to the durable spool."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response

from chatadmin.api import spooling
from chatadmin.api.auth import actor
from chatadmin.api.gate import write_turn
from chatadmin.api.http import read_json, respond
from chatadmin.api.spec import Endpoint
from chatadmin.exceptions import TooLarge
from chatadmin.outage import DATABASE_DOWN
from chatadmin.services import spooled
from chatadmin.services.ingest import Batch, BatchIn, BatchOut, EventIn, ingest
from chatadmin.services.ingest.events import validate_event


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
    outage = request.app.state.outage
    try:
        if outage.down:
            return spool_batch(request, state, body.events)
        async with write_turn(request):
            results = await ingest(state, body.events)
    except DATABASE_DOWN as exc:
        outage.failed(exc)
        # Whatever part of the batch went in is written again, unchanged, when it is replayed.
        return spool_batch(request, state, body.events)
    status = 207 if any(r.status == "error" for r in results) else 200
    return respond(BatchOut(results=results), status)


def spool_batch(request: Request, state: Batch, events: list[EventIn]) -> Response:
    """MongoDB unreachable: the valid events go to the spool (202, each `spooled`); the
    invalid ones get their errors now, as they would have."""
    checked = [validate_event(raw, i) for i, raw in enumerate(events)]
    valid = [events[ev.index] for ev in checked if ev.result is None]
    if valid:
        spooling.keep(request, spooled.ingest_record(state.org_id, state.actor, valid))
    results = []
    for ev in checked:
        if ev.result is None:
            ev.done("accepted")
            ev.result.spooled = True
        results.append(ev.result)
    status = 207 if any(r.status == "error" for r in results) else 202
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
        also=(207, 202),
        spools=True,
    ),
]
