"""The endpoint table: one entry per method and path, used both to route and to document.

Because routes and the OpenAPI document come from the same entries, and request bodies and
query strings are validated by the same pydantic models the document is generated from, the
two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    """One operation of the API."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    scope: str | None = "read"
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = field(default=())
    also: tuple[int, ...] = field(default=())  # other success statuses with the same body
    many: bool = False  # the response is a page: {"items": [response], "next_cursor"}
    spools: bool = False  # MongoDB down: the write goes to the durable spool (202), not a 503
    spooled: type[BaseModel] | None = None  # the 202 body, when it differs from `response`
