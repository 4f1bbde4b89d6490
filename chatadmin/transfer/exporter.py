"""Export: an org's conversations (or one thread) to a file, streamed, in constant memory.

Threads are read with one cursor (newest activity since `--since`, else all live threads, in
creation order) and each thread's messages with `messages.all_messages` (seq order, deleted
ones left out): nothing is ever loaded whole. The file is written beside its target and moved
into place at the end, so a failed export leaves no half file; a name ending in `.gz` is
gzipped. Formats: `native` (the ingest events that import back to the same documents, see
`formats/native.py`), `openai` and `anthropic` (one conversation a line, see `render.py`) and
`markdown` (the admin's transcript export, escaped so that a viewer runs nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from chatadmin.clock import to_ms, utcnow
from chatadmin.db import read_ahead
from chatadmin.models import Message, Thread, User
from chatadmin.models.jsonfield import UNESCAPES, unescape_keys
from chatadmin.models.message import MessageIn
from chatadmin.models.schema import iso_ms
from chatadmin.models.thread import LIVE_STATUSES, ThreadIn
from chatadmin.models.user import UserIn
from chatadmin.services import messages as messages_service
from chatadmin.services import threads as threads_service
from chatadmin.transfer import render
from chatadmin.transfer.formats.native import HEADER

FORMATS = ("native", "openai", "anthropic", "markdown")
PAGE = 500  # messages a read brings
RAW = CodecOptions(document_class=RawBSONDocument, tz_aware=True)
DECODE = CodecOptions(tz_aware=True)
ESCAPED = tuple(c.encode() for c in UNESCAPES)  # the store's escapes of `$`, `.` and NUL
THREAD_FIELDS = set(ThreadIn.model_fields) - {"thread_id"}
MESSAGE_FIELDS = set(MessageIn.model_fields) - {"message_id"} | {"thread_id"}
USER_FIELDS = set(UserIn.model_fields) - {"last_login"}


@dataclass
class ExportSummary:
    """What an export wrote."""

    format: str
    path: str
    threads: int = 0
    messages: int = 0
    users: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        rate = self.messages / self.seconds if self.seconds else 0
        return [
            f"exported {self.threads} threads, {self.messages} messages, {self.users} users "
            f"({self.format}) to {self.path} in {self.seconds:.1f} s ({rate:,.0f} messages/s)"
        ]


def native_page(page: list[RawBSONDocument]) -> tuple[str, list[str], list[tuple[str, dict]]]:
    """A page of stored messages as native `message` lines; the users they name, in order,
    and their feedback. Decoding is done in C, and keys are unescaped only in the documents
    that hold an escaped key, which is far faster than building a model per message."""
    lines, users, feedback = [], [], []
    for raw in page:
        doc = bson.decode(raw.raw, codec_options=DECODE)
        if any(mark in raw.raw for mark in ESCAPED):
            doc = unescape_keys(doc)
        if doc.get("user_id"):
            users.append(doc["user_id"])
        data = {k: doc[k] for k in MESSAGE_FIELDS if doc.get(k) is not None}
        data["created_at"] = iso_ms(doc["created_at"])
        lines.append(event_line("message", doc["message_id"], data))
        fb = doc.get("feedback") or {}
        fb = {k: fb[k] for k in ("is_helpful", "rating", "comment") if fb.get(k) is not None}
        if fb:
            feedback.append((doc["message_id"], fb))
    lines.append("")
    return "\n".join(lines), list(dict.fromkeys(users)), feedback


def event_line(kind: str, rid: str, data: dict) -> str:
    """One native JSONL event (without its newline)."""
    return dumps({"type": kind, "id": rid, "data": data})


def _default(value):
    return iso_ms(value) if isinstance(value, datetime) else str(value)


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_default)


async def export(
    org_id: str,
    path: str | Path,
    *,
    fmt: str = "native",
    since: datetime | None = None,
    thread_id: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write the export; returns what it wrote (NotFound for an unknown `thread_id`)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    path = Path(path)
    summary = ExportSummary(fmt, str(path))
    started = time.monotonic()
    if thread_id is not None:
        await threads_service.get_thread(org_id, thread_id)  # NotFound before any file is made
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with _open(tmp, path.name.endswith(".gz")) as out:
            writer = Writer(org_id, out, fmt, summary, progress)
            await writer.start()
            await writer.threads(_threads(org_id, since, thread_id))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    summary.seconds = time.monotonic() - started
    return summary


def _open(path: Path, gz: bool) -> IO[str]:
    if gz:
        return gzip.open(path, "wt", encoding="utf-8", compresslevel=6)
    return open(path, "w", encoding="utf-8")


async def _threads(org_id: str, since: datetime | None, thread_id: str | None):
    """The threads to export, one cursor (or the one asked for)."""
    if thread_id is not None:
        yield await threads_service.get_thread(org_id, thread_id)
        return
    query: dict = {"org_id": org_id, "status": {"$in": LIVE_STATUSES}}
    if since is not None:
        query["last_activity_ms"] = {"$gte": to_ms(since)}
    async for thread in Thread.find(query).sort([("created_at_ms", 1)]):
        yield thread


async def _pages(org_id: str, threads: AsyncIterator[Thread]):
    """Each thread, then its visible messages as stored (the query of
    `messages.all_messages`) in pages of raw BSON: `(thread, None)`, then `(thread, page)`s.
    Read through `read_ahead`: one task reads ahead across threads (boundedly), so the server
    is never idle while a page is written, not even between two threads."""
    coll = Message.get_pymongo_collection().with_options(codec_options=RAW)
    async for thread in threads:
        yield thread, None
        query = messages_service.visible(org_id, thread.thread_id)
        cursor = coll.find(query).sort([("seq", 1)]).batch_size(PAGE)
        try:
            while page := await cursor.to_list(PAGE):
                yield thread, page
        finally:
            await cursor.close()


class Writer:
    """Writes one export: a header, then each thread in the chosen format."""

    def __init__(self, org_id, out, fmt, summary: ExportSummary, progress) -> None:
        self.org_id, self.out, self.fmt, self.summary = org_id, out, fmt, summary
        self.progress = progress
        self.users: set[str] = set()  # users written (native): a set of ids, not documents

    async def start(self) -> None:
        if self.fmt == "native":
            header = {**HEADER, "org_id": self.org_id, "exported_at": iso_ms(utcnow())}
            self.out.write(dumps(header) + "\n")

    def _messages(self, thread: Thread) -> AsyncIterator[Message]:
        return self._counted(messages_service.all_messages(self.org_id, thread.thread_id))

    async def _counted(self, cursor) -> AsyncIterator[Message]:
        async for m in cursor:
            self.summary.messages += 1
            if self.progress is not None:
                self.progress(1)
            yield m

    async def threads(self, threads: AsyncIterator[Thread]) -> None:
        if self.fmt == "native":
            await self._native(threads)
            return
        async for thread in threads:
            self.summary.threads += 1
            if self.fmt == "markdown":
                from chatadmin.admin.transcript import markdown_export  # the admin's, loaded late

                async for chunk in markdown_export(thread, self._messages(thread)):
                    self.out.write(chunk)
                self.out.write("---\n\n")
            else:
                await render.conversation_line(self.fmt, thread, self._messages(thread), self.out)

    async def _native(self, threads: AsyncIterator[Thread]) -> None:
        feedback: list = []
        async for thread, page in read_ahead(_pages(self.org_id, threads)):
            if page is None:  # a thread begins
                self._feedback(feedback)
                self.summary.threads += 1
                await self._user(thread.user_id)
                data = thread.model_dump(mode="json", include=THREAD_FIELDS, exclude_none=True)
                self._event("thread", thread.thread_id, data)
                continue
            # Decoding and encoding run beside the event loop, which meanwhile reads the next
            # page from the server: the two overlap instead of taking turns.
            lines, users, found = await asyncio.to_thread(native_page, page)
            for user_id in users:
                await self._user(user_id)
            self.out.write(lines)
            self.summary.messages += len(page)
            if self.progress is not None:
                self.progress(len(page))
            feedback += found
            if len(feedback) >= 1000:  # bounded: written as they come, after their messages
                self._feedback(feedback)
        self._feedback(feedback)

    def _feedback(self, pending: list) -> None:
        for mid, data in pending:
            self._event("feedback", mid, data)
        pending.clear()

    async def _user(self, user_id: str) -> None:
        if user_id in self.users:
            return
        self.users.add(user_id)
        user = await User.find_one({"org_id": self.org_id, "user_id": user_id})
        if user is None:
            return
        data = user.model_dump(mode="json", include=USER_FIELDS, exclude_none=True)
        if user.last_login_ms:
            data["last_login"] = iso_ms(user.last_login)
        self.summary.users += 1
        self._event("user", user_id, data)

    def _event(self, kind: str, rid: str, data: dict) -> None:
        self.out.write(event_line(kind, rid, data) + "\n")
