"""The OpenAPI 3.1 document, generated from the endpoint table and its pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chatadmin import __version__
from chatadmin.api.spec import Endpoint
from chatadmin.models.base import CLIENT_ID_RE

REF = "#/components/schemas/{model}"
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {}},
            },
        }
    },
}
ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing or invalid API key",
    403: "Missing scope",
    404: "Not found (or another org's)",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Body is not JSON",
    422: "Invalid input",
    429: "Rate limit reached (see Retry-After and the X-RateLimit-* headers)",
    503: "Database unavailable, or (a heavy write) every write turn taken: retry later",
}


def _page(ref: dict) -> dict:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": ref},
            "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    }


def _query_parameters(model: type[BaseModel]) -> list[dict]:
    schema = model.model_json_schema()
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in props.items()
    ]


def _path_parameters(path: str) -> list[dict]:
    out = []
    for name in re.findall(r"{(\w+)}", path):
        schema = (
            {"type": "string", "minLength": 16, "maxLength": 128}
            if name == "share_id"
            else {"type": "string", "pattern": CLIENT_ID_RE}
        )
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    return out


def _error_codes(ep: Endpoint) -> set[int]:
    """Every error status the endpoint can answer."""
    codes = set(ep.errors) | {405, 503}
    if ep.scope:
        codes |= {401, 403, 429}
    if "{" in ep.path:
        codes.add(404)
    if ep.body:
        codes |= {400, 413, 415, 422}
    if ep.query:
        codes.add(422)
    return codes


def build_openapi(endpoints: list[Endpoint], extra: dict[str, Any] | None = None) -> dict:
    """The whole document for `endpoints` (paths relative to `/api/v1`)."""
    wanted: list[tuple[type[BaseModel], str]] = []
    for ep in endpoints:
        if ep.body:
            wanted.append((ep.body, "validation"))
        if ep.response:
            wanted.append((ep.response, "serialization"))
        if ep.spooled:
            wanted.append((ep.spooled, "serialization"))
    keys, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    paths: dict[str, dict] = {}
    for ep in endpoints:
        op: dict[str, Any] = {
            "operationId": ep.handler.__name__,
            "summary": ep.summary,
            "tags": [ep.tag],
            "parameters": _path_parameters(ep.path)
            + (_query_parameters(ep.query) if ep.query else []),
            "responses": {},
        }
        if ep.scope:
            op["security"] = [{"apiKey": []}]
            op["description"] = f"Needs an API key with the `{ep.scope}` scope."
        if ep.body:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": keys[(ep.body, "validation")]}},
            }
        if ep.status == 204:
            op["responses"]["204"] = {"description": "Done"}
        else:
            schema = keys[(ep.response, "serialization")] if ep.response else {}
            schema = _page(schema) if ep.many else schema
            op["responses"][str(ep.status)] = {
                "description": "OK",
                "content": {"application/json": {"schema": schema}},
            }
        for code in ep.also:
            op["responses"][str(code)] = op["responses"][str(ep.status)]
        if ep.spooled:
            op["responses"]["202"] = {
                "description": "MongoDB unreachable: kept in the durable spool, applied later",
                "content": {"application/json": {"schema": keys[(ep.spooled, "serialization")]}},
            }
        for code in sorted(_error_codes(ep)):
            op["responses"][str(code)] = {
                "description": ERROR_TEXT.get(code, "Error"),
                "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
            }
        paths.setdefault(ep.path, {})[ep.method.lower()] = op
    schemas = {**defs.get("$defs", {}), "Error": ERROR_SCHEMA}
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "chatadmin API",
            "version": __version__,
            "description": "Conversation history for AI chat applications. Errors are always "
            '`{"error": {"code", "message", "details"}}`.',
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }
    for path, ops in (extra or {}).items():
        paths.setdefault(path, {}).update(ops)
    return doc
