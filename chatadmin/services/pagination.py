"""Opaque keyset cursors, the page shape every list returns, and newest-first keyset reads.

Newest-first lists (threads, analyses, executions) page on an integer ms field with ties broken
by an id, both descending. The next page is read as a range, `ms <= last ms`, and the rows at
the last ms that were already shown are dropped in the app, instead of the textbook
`{"$or": [{ms < a}, {ms: a, id < t}]}`: nx-27017 evaluates a query with a top-level `$or` in
Python over every document of the collection, while it runs a range in SQL, and on MongoDB the
range is one index scan. The cursor carries how many rows at the last ms were shown, so the
read asks for that many more; past `MAX_TIES` of them the page falls back to the `$or`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from chatadmin.exceptions import Invalid

T = TypeVar("T")
MAX_LIMIT = 200  # lists without a maximum of their own
MAX_TIES = 5_000  # rows at one ms a range read may re-read and drop before the `$or` is used
NEWEST_FIRST_CURSOR = {"ms": int, "id": str, "n": int}


@dataclass
class Page(Generic[T]):
    """One page of results and the cursor of the next (None at the end)."""

    items: list[T] = field(default_factory=list)
    next_cursor: str | None = None


def _invalid() -> Invalid:
    return Invalid("cursor is not valid", [{"field": "cursor", "message": "not valid"}])


def encode_cursor(values: dict[str, Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *schemas: dict[str, type]) -> dict[str, Any] | None:
    """Decode a cursor and check that it holds exactly the keys and types of one of `schemas`
    (the current one first, then older ones still accepted)."""
    if cursor is None or cursor == "":
        return None
    try:
        if len(cursor) > 1024:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise _invalid() from exc
    if isinstance(values, dict):
        for schema in schemas:
            if set(values) == set(schema) and all(_fits(values[k], t) for k, t in schema.items()):
                return values
    raise _invalid()


def _fits(value: Any, kind: type) -> bool:
    return type(value) is kind and (kind is not int or -(2**63) <= value < 2**63)


def clamp_limit(limit: int | None, default: int = 20, maximum: int = MAX_LIMIT) -> int:
    if limit is None:
        return default
    if limit < 1:
        raise Invalid("limit must be at least 1")
    return min(limit, maximum)


# -- newest first ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewestFirst:
    """The order of a newest-first list: an integer ms field, then an id, both descending."""

    ms_field: str
    id_field: str

    @property
    def sort(self) -> list[tuple[str, int]]:
        return [(self.ms_field, -1), (self.id_field, -1)]

    def position(self, cursor: str | None) -> dict[str, Any] | None:
        """The position a cursor of this list holds: `{"ms", "id", "n"}` (n: rows at `ms`
        already shown), or None for the first page."""
        pos = decode_cursor(cursor, NEWEST_FIRST_CURSOR)
        if pos is not None and pos["n"] < 1:
            raise _invalid()
        return pos

    def after(self, query: dict[str, Any], pos: dict[str, Any]) -> dict[str, Any]:
        """The rows past `pos` with the `$or` on ties (exact, but scanned by nx-27017)."""
        return {
            **query,
            "$or": [
                {self.ms_field: {"$lt": pos["ms"]}},
                {self.ms_field: pos["ms"], self.id_field: {"$lt": pos["id"]}},
            ],
        }

    def shown(self, doc: dict[str, Any], pos: dict[str, Any] | None) -> bool:
        """Whether a row of a range read was on an earlier page (it sorts at or before `pos`)."""
        return (
            pos is not None and doc[self.ms_field] == pos["ms"] and doc[self.id_field] >= pos["id"]
        )


async def newest_first(
    collection,
    query: dict[str, Any],
    order: NewestFirst,
    limit: int,
    pos: dict[str, Any] | None,
    projection: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of raw documents of `query` in `order` after `pos`, and the next page's cursor.

    `pos` is a position from `NewestFirst.position`; one whose `n` is None (an older cursor
    that did not count the rows at its ms) is read with the `$or`.
    """
    ties = pos["n"] if pos else 0
    while True:
        if pos is not None and (ties is None or ties > MAX_TIES):
            docs = await _read(collection, order.after(query, pos), order, limit + 1, projection)
            return _paged(docs, order, limit, pos, ties or 0)
        ranged = {**query, order.ms_field: {"$lte": pos["ms"]}} if pos else query
        docs = await _read(collection, ranged, order, limit + ties + 1, projection)
        shown = 0
        while shown < len(docs) and order.shown(docs[shown], pos):
            shown += 1
        rest = docs[shown:]
        if len(rest) > limit or len(docs) < limit + ties + 1:
            return _paged(rest, order, limit, pos, shown)
        ties = 2 * shown  # more rows moved to `ms` since the cursor was made: read further


async def _read(collection, query, order: NewestFirst, count: int, projection) -> list[dict]:
    cursor = collection.find(query, projection, batch_size=count)
    return await cursor.sort(order.sort).limit(count).to_list()


def _paged(
    rest: list[dict], order: NewestFirst, limit: int, pos: dict | None, before: int
) -> tuple[list[dict], str | None]:
    """The page of `rest`, and a cursor that counts the rows shown at its last ms (`before`:
    those shown on earlier pages at `pos`)."""
    if len(rest) <= limit:
        return rest, None
    page = rest[:limit]
    last_ms, last_id = page[-1][order.ms_field], page[-1][order.id_field]
    ties = sum(1 for d in page if d[order.ms_field] == last_ms)
    if pos is not None and pos["ms"] == last_ms:
        ties += before
    return page, encode_cursor({"ms": last_ms, "id": last_id, "n": ties})
