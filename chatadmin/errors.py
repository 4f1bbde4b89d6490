"""The one place where errors become HTTP answers: JSON `{"error": {code, message, details}}`."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from chatadmin.exceptions import (
    BadRequest,
    ChatAdminError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from chatadmin.outage import DATABASE_DOWN

log = logging.getLogger("chatadmin.errors")
RETRY_AFTER_S = 5

STATUS = {
    BadRequest: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409,
    TooLarge: 413, UnsupportedMediaType: 415, Invalid: 422, RateLimited: 429, Unavailable: 503,
}  # fmt: skip
HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
    422: "invalid", 429: "rate_limited", 503: "unavailable",
}  # fmt: skip


def error_response(
    status: int, code: str, message: str, details: list | None = None, headers: dict | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return JSONResponse(body, status_code=status, headers=headers)


async def chatadmin_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChatAdminError)
    status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else getattr(exc, "headers", None)
    return error_response(status, exc.code, str(exc), exc.details, headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """A model built from client data refused it after the request schema let it through."""
    assert isinstance(exc, ValidationError)
    details = [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ][:50]
    return error_response(422, "invalid", "request body is invalid", details)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DATABASE_DOWN):
        outage = getattr(request.app.state, "outage", None)
        if outage is not None:
            outage.failed(exc)  # says why, at most once a minute
        else:
            log.warning("MongoDB unavailable: %s", exc)
        return error_response(
            503, "unavailable", "the database is not reachable; retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )  # fmt: skip
    log.exception("database error", exc_info=exc)
    return error_response(500, "internal_error", "the database refused the operation")


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred")


EXCEPTION_HANDLERS = {
    ChatAdminError: chatadmin_error,
    HTTPException: http_error,
    ValidationError: validation_error,
    PyMongoError: database_error,
    Exception: unexpected_error,
}
