"""Free-form client objects (metadata, tool input, parameters, results) stored exactly.

Keys may start with `$` or contain `.` (and NUL), which MongoDB update operators and BSON refuse
or misread, so they are escaped to private-use characters on the way into MongoDB and restored
on the way out. Clients may not use those private-use characters in keys (the API refuses them),
so the mapping is unambiguous. Nesting is bounded (`MAX_DEPTH`), checked without recursion.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator

MAX_DEPTH = 32
ESCAPES = {"$": "\ue001", ".": "\ue002", "\x00": "\ue003"}
UNESCAPES = {v: k for k, v in ESCAPES.items()}
RESERVED = frozenset(UNESCAPES)
_ESCAPE_TABLE = str.maketrans(ESCAPES)
_UNESCAPE_TABLE = str.maketrans(UNESCAPES)


class StoredDict(dict):
    """A free-form object; its keys are escaped when Beanie writes it to MongoDB."""


class StoredList(list):
    """A free-form array; keys of the objects inside are escaped when written."""


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a JSON-like value (a scalar is 0), without recursion.

    Counting stops just past `limit` (the answer is then `limit + 1`).
    """
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if level > limit:
            return level
        stack.extend((child, level) for child in children)
    return deepest


def _translate(value: Any, table: dict, marks: frozenset[str]) -> Any:
    """A copy of `value` with the keys that hold one of `marks` translated (runs on every
    write of every document, so keys without them are not translated at all)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            k = k if isinstance(k, str) else str(k)
            if not marks.isdisjoint(k):
                k = k.translate(table)
            out[k] = _translate(v, table, marks) if isinstance(v, dict | list | tuple) else v
        return out
    if isinstance(value, list | tuple):
        return [_translate(v, table, marks) if isinstance(v, dict | list | tuple) else v
                for v in value]  # fmt: skip
    return value


_ESCAPED = frozenset(ESCAPES)


def escape_keys(value: Any) -> Any:
    """The storable form: every key with `$`, `.` and NUL replaced by private-use characters."""
    return _translate(value, _ESCAPE_TABLE, _ESCAPED)


def unescape_keys(value: Any) -> Any:
    """The client form of a stored value."""
    return _translate(value, _UNESCAPE_TABLE, RESERVED)


def reserved_keys(value: Any) -> list[str]:
    """Keys that use the escape characters (refused from clients)."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found += [k for k in item if isinstance(k, str) and RESERVED & set(k)]
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def _check_depth(value: Any) -> Any:
    if depth(value) > MAX_DEPTH:
        raise ValueError(f"nesting deeper than {MAX_DEPTH} levels")
    return value


def _stored(value: Any, limit: int = MAX_DEPTH) -> Any:
    if depth(value, limit) > limit:
        raise ValueError(f"nesting deeper than {limit} levels")
    value = unescape_keys(value)
    if isinstance(value, dict):
        return StoredDict(value)
    if isinstance(value, list):
        return StoredList(value)
    return value


def _client(value: Any) -> Any:
    _check_depth(value)
    bad = reserved_keys(value)
    if bad:
        raise ValueError("keys may not contain the characters U+E001 to U+E003")
    return value


# In Documents: restored on load, escaped by the encoder on write.
JsonObject = Annotated[dict[str, Any], AfterValidator(_stored)]
JsonValue = Annotated[Any, AfterValidator(_stored)]
# Audit before/after/changes and share snapshots wrap client objects a few levels deeper.
AuditJson = Annotated[dict[str, Any], AfterValidator(lambda v: _stored(v, MAX_DEPTH + 8))]
# In API request schemas: refused when too deep or using the escape characters.
ClientJsonObject = Annotated[dict[str, Any], AfterValidator(_client)]
ClientJsonValue = Annotated[Any, AfterValidator(_client)]

STORAGE_ENCODERS = {StoredDict: escape_keys, StoredList: escape_keys}
