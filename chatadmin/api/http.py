"""Reading requests and writing responses for the JSON API.

A body is read only if it is JSON (415 otherwise), within `CHATADMIN_MAX_BODY_BYTES` (413),
well-formed (400), not nested past the documented limit (422) and valid against its pydantic
model (422 with the path of each bad field). Query strings are validated by models too.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chatadmin.exceptions import BadRequest, Invalid, NotFound, TooLarge, UnsupportedMediaType
from chatadmin.models.base import CLIENT_ID_PATTERN
from chatadmin.models.jsonfield import MAX_DEPTH, depth, reserved_keys

M = TypeVar("M", bound=BaseModel)
JSON_TYPES = ("application/json",)


def _details(exc: ValidationError) -> list[dict]:
    """Each bad field as {"field": "a.0.b", "message", "type"}, without pydantic's union labels."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and "[" in p)]
        entry = {"field": ".".join(str(p) for p in loc), "message": err["msg"], "type": err["type"]}
        out.append((loc[-1:] == ["str"], entry))
    # `content` may be a string or a list: when a list was sent, drop the string branch's error.
    useful = [e for is_str_branch, e in out if not is_str_branch] or [e for _, e in out]
    return useful[:50]


def validate(model: type[M], data: Any, what: str = "request body") -> M:
    """The model for `data`, or Invalid naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid(f"{what} is invalid", _details(exc)) from None
    except RecursionError:
        raise Invalid(f"{what} is nested too deeply") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _int64(text: str) -> int:
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"integer {text[:30]} does not fit in 64 bits")
    return value


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:30]} is out of range")
    return value


async def read_body(request: Request) -> bytes:
    """The raw body, refused past the configured size (without reading all of it)."""
    cached = getattr(request.state, "raw_body", None)
    if cached is not None:
        return cached
    limit = request.app.state.settings.chatadmin_max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise TooLarge(f"request body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    request.state.raw_body = b"".join(chunks)
    return request.state.raw_body


def reserved_key_paths(data: Any) -> list[str]:
    """Paths of the keys that use the store's escape characters (refused from clients)."""
    found, stack = [], [(data, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                child = f"{path}.{key}" if path else str(key)
                if reserved_keys({key: None}):
                    found.append(child)
                stack.append((value, child))
        elif isinstance(item, list):
            stack.extend((v, f"{path}.{i}") for i, v in enumerate(item))
    return sorted(found)


async def has_body(request: Request) -> bool:
    """Whether the request carries a non-empty body (read and kept for `read_json`)."""
    return bool((await read_body(request)).strip())


async def read_json(request: Request, model: type[M]) -> M:
    """Parse and validate a JSON body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in JSON_TYPES and not ctype.endswith("+json"):
        raise UnsupportedMediaType("the body must be JSON (Content-Type: application/json)")
    raw = await read_body(request)
    if not raw.strip():
        raise BadRequest("the request body is empty")
    try:
        data = json.loads(
            raw, parse_constant=_reject_constant, parse_int=_int64, parse_float=_finite
        )
    except RecursionError:
        raise Invalid(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if depth(data, MAX_DEPTH + 4) > MAX_DEPTH + 4:  # the envelope adds a few levels
        raise Invalid(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        if all(e["type"] == "json_invalid" for e in exc.errors()):
            raise BadRequest("malformed JSON: the body is not valid UTF-8 JSON") from None
        raise Invalid("request body is invalid", _details(exc)) from None
    bad = reserved_key_paths(data)
    if bad:
        message = "keys may not contain the characters U+E001 to U+E003"
        raise Invalid(message, [{"field": path, "message": message} for path in bad[:20]])
    return parsed


def read_query(request: Request, model: type[M]) -> M:
    """Validate the query string against a model (repeated keys are refused)."""
    params = request.query_params
    data: dict[str, Any] = {}
    for key in params:
        values = params.getlist(key)
        if len(values) > 1:
            raise Invalid(f"query parameter {key!r} is repeated", [{"field": key}])
        data[key] = values[0]
    unknown = set(data) - set(model.model_fields)
    if unknown:
        raise Invalid(
            "unknown query parameters",
            [{"field": k, "message": "not a parameter of this endpoint"} for k in sorted(unknown)],
        )
    return validate(model, data, "query string")


def path_id(request: Request, name: str) -> str:
    """A path parameter, checked like a client id (anything else cannot exist: 404)."""
    value = request.path_params[name]
    if not CLIENT_ID_PATTERN.fullmatch(value):
        raise NotFound(f"{name.removesuffix('_id').replace('_', ' ')} {value[:80]!r} not found")
    return value


def respond(data: BaseModel | dict | list, status: int = 200) -> Response:
    """A JSON response from a model or plain data."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    return JSONResponse(data, status_code=status)


def no_content() -> Response:
    return Response(status_code=204)
