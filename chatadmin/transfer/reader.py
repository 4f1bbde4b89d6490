"""Streamed reading of import files: JSON arrays, single JSON documents and JSONL, gzip or not.

Nothing reads a whole file into memory. A JSON array is read item by item with `ijson`; JSONL
line by line; a single object is one item (one conversation), except a wrapper such as Chatbot
UI's `{"version", "history": [...]}`, whose array is streamed. Gzip is recognised by its magic
bytes, whatever the file is called. Every item carries its position (file and array index, or
line number), so errors can say where they are.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import ijson

from chatadmin.models.jsonfield import depth
from chatadmin.transfer.formats.common import Failed, Item, Position

GZIP_MAGIC = b"\x1f\x8b"
WRAPPERS = ("history", "conversations", "chats")  # top-level arrays of conversations
CHUNK = 64 * 1024
UNREADABLE = "unreadable"
MAX_NESTING = 64  # levels of one item; deeper input is refused (never a RecursionError)


class ReadError(Exception):
    """The file cannot be read any further (malformed JSON, not JSON at all, too large)."""

    def __init__(self, position: Position, message: str):
        super().__init__(f"{position}: {message}")
        self.position = position
        self.message = message


class TooLargeInput(ReadError):
    """The decompressed input passed the configured limit."""


class _Counted(io.RawIOBase):
    """A stream that counts what is read through it (and refuses more than `limit`)."""

    def __init__(self, inner: BinaryIO, name: str, limit: int | None, *also: BinaryIO):
        self.inner, self.name, self.limit, self.count = inner, name, limit, 0
        self.also = also  # closed with it (the file under a gzip stream)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            for stream in (self.inner, *self.also):
                stream.close()
        super().close()

    def readinto(self, buffer) -> int:
        data = self.inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        if self.limit is not None and self.count > self.limit:
            raise TooLargeInput(Position(self.name), f"more than {self.limit} bytes of data")
        return n


class Source:
    """Something to import: a file, or bytes (an API request body)."""

    def __init__(
        self,
        name: str,
        opener: Callable[[], BinaryIO],
        size: int | None = None,
        max_bytes: int | None = None,
    ):
        self.name, self.opener, self.size, self.max_bytes = name, opener, size, max_bytes
        self._raw: BinaryIO | None = None

    @classmethod
    def file(cls, path: str | Path) -> Source:
        path = Path(path)
        return cls(path.name, lambda: open(path, "rb"), os.path.getsize(path))

    def measure(self) -> int:
        """The size of the decompressed content, read through (TooLargeInput past the limit)."""
        with self.open() as stream:
            while stream.read(CHUNK):
                pass
            return stream.raw.count

    @classmethod
    def data(cls, name: str, data: bytes, max_bytes: int | None = None) -> Source:
        return cls(name, lambda: io.BytesIO(data), len(data), max_bytes)

    def open(self) -> io.BufferedReader:
        """A fresh binary stream of the (decompressed) content."""
        raw = self.opener()
        self._raw = raw
        head = raw.read(2)
        raw.seek(0)
        if head == GZIP_MAGIC:
            counted = _Counted(
                gzip.GzipFile(fileobj=raw, mode="rb"), self.name, self.max_bytes, raw
            )
        else:
            counted = _Counted(raw, self.name, self.max_bytes)
        return io.BufferedReader(counted, CHUNK)

    def consumed(self) -> int:
        """Bytes of the source itself read so far (for progress)."""
        try:
            return self._raw.tell() if self._raw is not None else 0
        except (OSError, ValueError):  # closed: read to its end
            return self.size or 0


def _first_byte(stream: io.BufferedReader) -> bytes:
    """The first significant byte (after a BOM and whitespace), without consuming it."""
    while True:
        head = stream.peek(64)[:64]
        if not head:
            return b""
        if head.startswith(b"\xef\xbb\xbf"):
            stream.read(3)
            continue
        stripped = head.lstrip()
        if stripped:
            stream.read(len(head) - len(stripped))
            return stripped[:1]
        stream.read(len(head))


def read_items(source: Source) -> Iterator[Item | Failed]:
    """Every item of the source, in order; raises ReadError when it cannot go on."""
    try:
        with source.open() as stream:
            first = _first_byte(stream)
            if first == b"[":
                yield from _array(stream, source.name, "item", "")
            elif first == b"{":
                yield from _object_or_lines(source, stream)
            elif not first:
                raise ReadError(Position(source.name), "the file is empty")
            else:
                raise ReadError(Position(source.name), "not JSON: expected an array or an object")
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ReadError(Position(source.name), f"cannot read the file ({exc})") from None


def _array(stream, name: str, prefix: str, path: str) -> Iterator[Item | Failed]:
    index = 0
    try:
        for value in ijson.items(stream, prefix, use_float=True):
            yield _item(value, Position(name, index=index, path=path))
            index += 1
    except (ijson.JSONError, ValueError) as exc:
        raise ReadError(
            Position(name, index=index, path=path), f"malformed JSON ({_short(exc)})"
        ) from None


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]


def _object_or_lines(source: Source, stream: io.BufferedReader) -> Iterator[Item | Failed]:
    """JSONL when the first line is a whole JSON value; else one document."""
    first = stream.readline()
    try:
        _loads(first)
        lines = True
    except ValueError:
        second = stream.readline()
        while second and not second.strip():
            second = stream.readline()
        lines = _is_json_line(second)  # a JSONL file whose first line is broken
    if lines:
        with _reopen(source) as again:
            yield from _lines(again, source.name)
        return
    with _reopen(source) as again:
        wrapper = _wrapper_key(again)
    with _reopen(source) as again:
        if wrapper:
            yield from _array(again, source.name, f"{wrapper}.item", wrapper)
        else:
            yield from _document(again, source.name)


def _reopen(source: Source) -> io.BufferedReader:
    stream = source.open()
    _first_byte(stream)
    return stream


def _is_json_line(line: bytes) -> bool:
    try:
        return isinstance(_loads(line), dict)
    except ValueError:
        return False


def _lines(stream, name: str) -> Iterator[Item | Failed]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            value = _loads(line)
        except (ValueError, RecursionError) as exc:
            yield Failed(Position(name, line=number), f"malformed JSON ({_short(exc)})", UNREADABLE)
            continue
        key = _wrapped(value)
        if key is None:
            yield _item(value, Position(name, line=number))
        else:  # a wrapper written on one line (a minified Chatbot UI export)
            for index, inner in enumerate(value[key]):
                yield _item(inner, Position(name, index=index, path=key))


def _wrapped(value) -> str | None:
    """The wrapper key of a whole object already read, if it is a wrapper."""
    if not isinstance(value, dict) or "messages" in value or "mapping" in value:
        return None
    return next((k for k in WRAPPERS if isinstance(value.get(k), list)), None)


def _reject(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _loads(line: bytes):
    return json.loads(line, parse_constant=_reject)


def _wrapper_key(stream) -> str | None:
    """The top-level key holding an array of conversations (read as events, not values)."""
    try:
        depth, key = 0, None
        for prefix, event, value in ijson.parse(stream):
            if event in ("start_map", "start_array"):
                if depth == 1 and event == "start_array" and key in WRAPPERS:
                    return key
                depth += 1
            elif event in ("end_map", "end_array"):
                depth -= 1
            elif event == "map_key" and depth == 1:
                key = value
            if depth == 0 and prefix == "" and event == "end_map":
                return None
    except (ijson.JSONError, ValueError):
        return None  # reported by the full read
    return None


def _document(stream, name: str) -> Iterator[Item | Failed]:
    try:
        values = list(ijson.items(stream, "", use_float=True))  # one value (and the check
        # that nothing follows it)
    except (ijson.JSONError, ValueError) as exc:
        raise ReadError(Position(name), f"malformed JSON ({_short(exc)})") from None
    if not values:
        raise ReadError(Position(name), "the file holds no JSON value")
    yield _item(values[0], Position(name))


def _item(value, position: Position) -> Item | Failed:
    if depth(value, MAX_NESTING) > MAX_NESTING:
        return Failed(position, f"nested deeper than {MAX_NESTING} levels")
    return Item(value, position)
