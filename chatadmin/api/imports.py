"""`POST /import`: an export file in the body (up to the body limit), imported through ingest.

The body is the file as it is: JSON, JSONL (`application/x-ndjson`) or either gzipped (told by
its bytes; its decompressed size is bounded too). `?format=` names the format (default: told by
its shape), `?user_id=` the owner of every imported thread, `?dry_run=true` validates only. The
answer is the import summary: 200 when every conversation was imported, 207 when some failed (the
others are imported; each error names its position), 400 when the body is not JSON at all, 422
when nothing in it could be imported. Imported messages are history, so they do not count
against the per-user message rate limits; the request counts against the key's.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel
from starlette.requests import Request
from starlette.responses import Response

from chatadmin.api.auth import actor
from chatadmin.api.gate import write_turn
from chatadmin.api.http import read_body, read_query, respond
from chatadmin.api.spec import Endpoint
from chatadmin.exceptions import BadRequest, Invalid, TooLarge, UnsupportedMediaType
from chatadmin.models.base import ClientId
from chatadmin.models.schema import ApiQuery
from chatadmin.transfer import IMPORT_FORMATS, Importer, Options, Source
from chatadmin.transfer.reader import GZIP_MAGIC, UNREADABLE, TooLargeInput

TYPES = (
    "application/json",
    "application/x-ndjson",
    "application/jsonl",
    "application/x-jsonl",
    "application/jsonlines",
    "application/gzip",
    "application/x-gzip",
)
INFLATE = 10  # a gzipped body may hold up to ten times the body limit
ImportFormat = Literal[IMPORT_FORMATS]  # type: ignore[valid-type]


class ImportQuery(ApiQuery):
    """`POST /import` query string."""

    format: ImportFormat = "auto"
    user_id: ClientId | None = None
    dry_run: bool = False


class ImportBody(RootModel[list[dict[str, Any]] | dict[str, Any]]):
    """An export file: a JSON array or object (or JSONL lines, sent as application/x-ndjson)."""


class Counts(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    valid: int | None = None  # dry runs: events that would be written


class SkippedOut(BaseModel):
    position: str
    reason: str


class ErrorOut(BaseModel):
    position: str
    message: str


class ImportOut(BaseModel):
    """What the import did (or, in a dry run, would do)."""

    format: str | None
    detected: bool
    dry_run: bool
    files: int
    conversations: int
    imported: int
    threads: Counts
    messages: Counts
    users: Counts
    skipped: list[SkippedOut] = Field(default_factory=list)
    errors: list[ErrorOut] = Field(default_factory=list)


async def import_file(request: Request) -> Response:
    key = request.state.api_key
    settings = request.app.state.settings
    query = read_query(request, ImportQuery)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in TYPES and not ctype.endswith("+json"):
        raise UnsupportedMediaType("the body must be JSON, JSONL (application/x-ndjson) or gzip")
    raw = await read_body(request)
    if not raw.strip():
        raise BadRequest("the request body is empty")
    source = Source.data("body", raw, max_bytes=settings.chatadmin_max_body_bytes * INFLATE)
    if raw[:2] == GZIP_MAGIC:
        try:
            source.measure()  # refuse a gzip bomb before anything is written
        except TooLargeInput:
            raise TooLarge(
                f"the decompressed body is larger than {source.max_bytes} bytes"
            ) from None
        except (OSError, EOFError, zlib.error):
            pass  # a broken gzip stream: the import reports it with its position
    options = Options(
        org_id=key.org_id,
        actor=replace(actor(request), via="import"),
        format=query.format,
        user_id=query.user_id,
        dry_run=query.dry_run,
        max_batch=settings.chatadmin_max_batch,
        max_message_bytes=settings.chatadmin_max_message_bytes,
    )
    async with write_turn(request):
        summary = await Importer(options).run(source)
    out = summary.as_dict()
    if summary.errors and not summary.imported and not summary.skipped:
        details = out["errors"][:20]
        if all(e.kind == UNREADABLE for e in summary.errors):
            raise BadRequest(f"the body is not readable JSON: {summary.errors[0]}", details)
        raise Invalid(f"nothing could be imported: {summary.errors[0]}", details)
    status = 207 if summary.errors else 200
    return respond(ImportOut.model_validate(out), status)


ENDPOINTS = [
    Endpoint(
        "POST",
        "/import",
        import_file,
        "Import an export file (ChatGPT, Claude, OpenAI, Anthropic, LibreChat, Open WebUI, "
        "seed 003 or native JSONL); idempotent",
        "import",
        scope="ingest",
        query=ImportQuery,
        body=ImportBody,
        response=ImportOut,
        also=(207,),
    ),
]
