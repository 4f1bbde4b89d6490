"""What every format module builds, and the helpers they share.

A format turns items read from a file (one JSON value each, with its position) into
`Conversation`s: the ingest event data of one thread, its messages and the users it names, ready
to be validated as a whole and written through `services.ingest`. Ids are derived from the
source's own ids (or from a hash of the content where the source has none), so importing the same
file twice gives the same ids, and ingest answers `unchanged`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chatadmin.models.base import CLIENT_ID_PATTERN

UNTITLED = "Untitled conversation"
TITLE_MAX = 500
DESCRIPTION_MAX = 5000


@dataclass(frozen=True)
class Position:
    """Where an item came from: a file, and an array index or a JSONL line."""

    file: str
    index: int | None = None  # item of a JSON array (0-based)
    line: int | None = None  # line of a JSONL file (1-based)
    path: str = ""  # the array an item sits in, when it is not the top level ("history")

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file}: line {self.line}"
        if self.index is not None:
            where = f"{self.path}[{self.index}]" if self.path else f"index {self.index}"
            return f"{self.file}: conversation {where}"
        return self.file


@dataclass
class Item:
    """One JSON value read from a file."""

    value: Any
    position: Position


@dataclass
class Failed:
    """Something that could not be read or mapped; nothing of it is written."""

    position: Position
    message: str
    kind: str = "invalid"  # "unreadable": not JSON at all (malformed, truncated)


@dataclass
class Skipped:
    """Something deliberately not imported (an empty conversation, a corrupted entry)."""

    position: Position
    reason: str


@dataclass
class Record:
    """One event of a conversation: its id, its data and where it came from."""

    id: str
    data: dict
    where: str = ""


@dataclass
class Conversation:
    """One thread to import: its events, validated together before any is written."""

    position: Position
    thread_id: str | None
    thread: dict | None = None  # thread event data; None: made on demand (native only)
    messages: list[Record] = field(default_factory=list)
    users: list[Record] = field(default_factory=list)
    feedback: list[Record] = field(default_factory=list)
    owner: str | None = None  # a user to create (empty) if the org does not have it yet
    problems: list[str] = field(default_factory=list)  # a non-empty list fails it whole


@dataclass
class Context:
    """What a format needs besides the items: the default owner of threads without one."""

    user_id: str = "imported"
    user_given: bool = False  # --user was given: it owns every thread


Result = Conversation | Failed | Skipped


class Bad(ValueError):
    """The input does not have the shape the format expects (the message says where)."""


def guarded(position: Position, convert: Callable[..., Any], *args: Any) -> Iterator[Result]:
    """Run a converter on one item; any failure of it becomes a `Failed`, never a traceback."""
    try:
        found = convert(*args)
    except Bad as exc:
        yield Failed(position, str(exc))
        return
    except Exception as exc:  # a converter only maps data: anything it raises is the input's
        yield Failed(position, f"unexpected shape ({type(exc).__name__}: {exc})"[:500])
        return
    if isinstance(found, Conversation | Failed | Skipped):
        yield found
    else:
        yield from found


def per_item(
    items: Iterable[Item | Failed], convert: Callable[[Any, Position, Context], Any], ctx: Context
) -> Iterator[Result]:
    """Formats where each item is one conversation (or a list of them)."""
    for item in items:
        if isinstance(item, Failed):
            yield item
        else:
            yield from guarded(item.position, convert, item.value, item.position, ctx)


def first_user_text(conv: Conversation) -> str:
    """The first non-blank user text of a conversation (a title for sources without one)."""
    for rec in conv.messages:
        if rec.data.get("role") == "user":
            for b in rec.data.get("content") or []:
                if b.get("type") == "text" and b.get("text", "").strip():
                    return b["text"]
    return ""


# -- ids ------------------------------------------------------------------------------------------


def digest(value: Any, size: int = 32) -> str:
    """A short sha256 of a value's canonical JSON."""
    raw = value if isinstance(value, str) else canonical(value)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:size]


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def client_id(*parts: Any) -> str:
    """An id that satisfies the client id pattern: the parts joined by `:` when they fit,
    else the first part and a hash of all of them."""
    texts = [str(p) for p in parts if p is not None and str(p) != ""]
    raw = ":".join(texts)
    if CLIENT_ID_PATTERN.fullmatch(raw):
        return raw
    head = re.sub(r"[^A-Za-z0-9_.@-]", "", texts[0] if texts else "")[:40]
    tail = digest(raw)
    return f"{head}-{tail}" if head[:1].isalnum() else f"h{tail}"


def source_id(value: Any) -> str | None:
    """A usable id from a source field (strings and numbers), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str) and str(value).strip():
        return str(value).strip()
    return None


class Ids:
    """Message ids of one conversation: namespaced by its thread, unique within it."""

    def __init__(self, thread_id: str):
        self.thread_id = thread_id
        self.seen: set[str] = set()

    def __call__(self, raw: Any, fallback: Any) -> str:
        base = client_id(self.thread_id, source_id(raw) or f"m{fallback}")
        found, n = base, 1
        while found in self.seen:  # a source that repeats an id: keep both messages
            n += 1
            found = client_id(self.thread_id, source_id(raw) or f"m{fallback}", n)
        self.seen.add(found)
        return found


# -- values ---------------------------------------------------------------------------------------


def timestamp(value: Any) -> str | None:
    """An ISO 8601 UTC time from epoch seconds or ms, or an ISO string; None if unusable."""
    try:
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, int | float):
            seconds = value / 1000 if abs(value) > 1e11 else value
            when = datetime.fromtimestamp(seconds, UTC)
        elif isinstance(value, str) and value.strip():
            text = value.strip()
            if re.fullmatch(r"-?\d+(\.\d+)?", text):
                return timestamp(float(text))
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
        else:
            return None
        if not 1970 <= when.year <= 9999:
            return None
        return when.astimezone(UTC).isoformat(timespec="milliseconds")
    except (ValueError, OverflowError, OSError):
        return None


def text_of(value: Any) -> str:
    """A string from a value that should be one (None is empty; others are JSON)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return canonical(value)


def title(value: Any, fallback: str = UNTITLED) -> str:
    """A thread title: one line, at most 500 characters, never empty."""
    text = " ".join(text_of(value).split())[:TITLE_MAX]
    return text or fallback


def clip(value: Any, limit: int) -> str | None:
    text = text_of(value).strip()
    return text[:limit] or None


def as_object(value: Any) -> dict:
    """A tool input as an object: JSON strings decoded (twice when double-encoded); anything
    else wrapped, never lost."""
    for _ in range(3):
        if isinstance(value, dict):
            return value
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except ValueError:
            return {"arguments": value}
    return {"value": value}


def compact(data: dict) -> dict:
    """The dict without None values (ingest schemas refuse few, but the hashes stay small)."""
    return {k: v for k, v in data.items() if v is not None}


# -- blocks ---------------------------------------------------------------------------------------


def text_block(text: Any) -> dict:
    return {"type": "text", "text": text_of(text)}


def structured(name: str | None, data: Any) -> dict:
    """A `structured_data` block: where anything without a block of its own is kept."""
    return {"type": "structured_data", "name": (name or "data")[:200], "data": data}


def tool_use(call_id: Any, name: Any, arguments: Any) -> dict:
    return {
        "type": "tool_use",
        "id": (source_id(call_id) or "call")[:256],
        "name": (text_of(name).strip() or "unknown")[:256],
        "input": as_object(arguments),
    }


def tool_result(call_id: Any, content: Any, is_error: Any = False) -> dict:
    """A `tool_result` block; content is a string or a list of text / image_ref parts."""
    if isinstance(content, list):
        parts = [_result_part(p) for p in content]
        content = parts if all(p is not None for p in parts) else text_of(content)
    elif not isinstance(content, str):
        content = text_of(content)
    return {
        "type": "tool_result",
        "tool_use_id": (source_id(call_id) or "call")[:256],
        "content": content,
        "is_error": bool(is_error),
    }


def _result_part(part: Any) -> dict | None:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind in ("image", "image_url", "image_ref"):
        url = image_url(part)
        if url:
            return {"type": "image_ref", "url": url, "media_type": part.get("media_type")}
    return {"type": "text", "text": text_of(part)}


def image_url(part: dict) -> str | None:
    """The URL of an image part (never inline bytes: base64 sources give None)."""
    candidates = [
        part.get("url"),
        part.get("image_url"),
        part.get("source"),
        part.get("asset_pointer"),
    ]
    for url in candidates:
        if isinstance(url, dict):
            url = url.get("url")
        if isinstance(url, str) and url.strip() and not url.startswith("data:"):
            return url.strip()[:4096]
    return None


def image_block(
    url: str, *, alt: Any = None, media_type: Any = None, width: Any = None, height: Any = None
) -> dict:
    block: dict[str, Any] = {"type": "image_ref", "url": url[:4096]}
    if isinstance(media_type, str):
        block["media_type"] = media_type[:200]
    if alt is not None and text_of(alt):
        block["alt_text"] = text_of(alt)[:1000]
    for key, value in (("width", width), ("height", height)):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            block[key] = value
    return block


def citation(
    cited: Any,
    *,
    title_: Any = None,
    url: Any = None,
    source: Any = None,
    location: dict | None = None,
) -> dict:
    block: dict[str, Any] = {"type": "citation", "cited_text": text_of(cited)}
    if title_ is not None and text_of(title_):
        block["title"] = text_of(title_)
    if isinstance(url, str) and url:
        block["url"] = url
    if source_id(source):
        block["source_id"] = source_id(source)
    if location:
        block["location"] = location
    return block


def role_of(value: Any, default: str = "user") -> str:
    """Our role for a source role name."""
    role = text_of(value).strip().lower()
    return {
        "human": "user",
        "user": "user",
        "assistant": "assistant",
        "ai": "assistant",
        "model": "assistant",
        "bot": "assistant",
        "system": "system",
        "developer": "system",
        "tool": "tool",
        "function": "tool",
        "ipython": "tool",
    }.get(role, default)
