"""Opaque keyset cursors and the page shape every list returns."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from chatadmin.exceptions import Invalid

T = TypeVar("T")
MAX_LIMIT = 200


@dataclass
class Page(Generic[T]):
    """One page of results and the cursor of the next (None at the end)."""

    items: list[T] = field(default_factory=list)
    next_cursor: str | None = None


def encode_cursor(values: dict[str, Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, schema: dict[str, type]) -> dict[str, Any] | None:
    """Decode a cursor and check that it holds exactly the expected keys and types."""
    if cursor is None or cursor == "":
        return None
    try:
        if len(cursor) > 1024:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Invalid("cursor is not valid", [{"field": "cursor", "message": "not valid"}]) from exc
    if not isinstance(values, dict) or set(values) != set(schema):
        raise Invalid("cursor is not valid", [{"field": "cursor", "message": "not valid"}])
    for key, kind in schema.items():
        value = values[key]
        if type(value) is not kind or (kind is int and not -(2**63) <= value < 2**63):
            raise Invalid("cursor is not valid", [{"field": "cursor", "message": "not valid"}])
    return values


def clamp_limit(limit: int | None, default: int = 20) -> int:
    if limit is None:
        return default
    if limit < 1:
        raise Invalid("limit must be at least 1")
    return min(limit, MAX_LIMIT)
