"""Import: conversations read from a file become ingest events, applied with `ingest`.

The one door: nothing here writes to a collection. Each conversation (a thread, its messages and
the users it names) is turned into `user` / `thread` / `message` / `feedback` events and
validated whole, with the same checks ingest makes (event schemas, message build and size,
storable values) and read-only look-ups for what only the database knows (a deleted thread, a
message id taken by another thread); only then is it written, in chunks of at most the batch
limit, the thread and users in the first. A conversation with any problem writes nothing and is
reported with its position; the others go on. Ids come from the source, so a second import of
the same file is all `unchanged`.

Small conversations are written together, up to the batch limit a batch (an export holds
thousands of conversations of a few messages each: one batch each would cost its round trips
thousands of times). A conversation that names an id of one waiting to be written (a thread, a
message, a user with other data) first has those written, so it is checked against them as
against any stored conversation; the same user with the same data is written once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import bson
from pydantic import ValidationError

from chatadmin.models import Message, Thread, User
from chatadmin.models.size import document_size
from chatadmin.services import audit
from chatadmin.services import users as users_service
from chatadmin.services.ingest import Batch, EventIn, ingest
from chatadmin.services.ingest.events import Event, validate_event
from chatadmin.services.ingest.writes import fields_of
from chatadmin.services.messages import DEFAULT_MAX_MESSAGE_BYTES, build_message
from chatadmin.services.threads import new_thread
from chatadmin.transfer.detect import PEEK, detect
from chatadmin.transfer.formats import MODULES
from chatadmin.transfer.formats.common import Context, Conversation, Failed, Item, Skipped
from chatadmin.transfer.reader import UNREADABLE, ReadError, Source, read_items

PROBLEMS_SHOWN = 5  # problems listed per failed conversation
LOOKUP = 1000  # ids per read-only look-up


@dataclass
class Issue:
    """An error or a skip, with where it is."""

    position: str
    message: str
    kind: str = "invalid"  # "unreadable": the input is not JSON (malformed, truncated, empty)

    def __post_init__(self) -> None:  # text from the input: printable and bounded, always
        self.position = _printable(self.position)[:1000]
        self.message = _printable(self.message)[:4000]

    def __str__(self) -> str:
        return f"{self.position}: {self.message}"


def _printable(text: str) -> str:
    return str(text).encode("utf-8", "replace").decode("utf-8")


@dataclass
class Summary:
    """What an import did (or, in a dry run, would do)."""

    format: str | None = None
    detected: bool = False
    dry_run: bool = False
    files: int = 0
    conversations: int = 0  # read and mapped (whether imported or not)
    imported: int = 0  # written whole (in a dry run: found valid)
    threads: Counter = field(default_factory=Counter)
    messages: Counter = field(default_factory=Counter)
    users: Counter = field(default_factory=Counter)
    skipped: list[Issue] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    formats: Counter = field(default_factory=Counter)  # per file, for folders

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {
            "format": self.format,
            "detected": self.detected,
            "dry_run": self.dry_run,
            "files": self.files,
            "conversations": self.conversations,
            "imported": self.imported,
            "threads": _counts(self.threads),
            "messages": _counts(self.messages),
            "users": _counts(self.users),
            "skipped": [{"position": i.position, "reason": i.message} for i in self.skipped],
            "errors": [{"position": i.position, "message": i.message} for i in self.errors],
        }

    def lines(self) -> list[str]:
        """A human summary."""
        verb = "would import" if self.dry_run else "imported"
        how = " (detected)" if self.detected else ""
        out = [f"format: {self.format or '?'}{how}"]
        if len(self.formats) > 1:
            out.append("formats: " + ", ".join(f"{k} {v}" for k, v in sorted(self.formats.items())))
        out.append(
            f"{verb} {self.imported} of {self.conversations} "
            f"conversations from {self.files} file(s): threads {_text(self.threads)}; "
            f"messages {_text(self.messages)}; users {_text(self.users)}"
        )
        out.append(f"skipped: {len(self.skipped)}; errors: {len(self.errors)}")
        out += [f"  skipped {i}" for i in self.skipped]
        return out


def _counts(counter: Counter) -> dict[str, int]:
    keys = ("valid",) if "valid" in counter else ("created", "updated", "unchanged")
    return {k: counter.get(k, 0) for k in keys}


def _text(counter: Counter) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counter.items())) or "none"


@dataclass
class Options:
    """How to import."""

    org_id: str
    actor: audit.Actor = field(default_factory=lambda: audit.Actor("system", "importer", via="cli"))
    format: str = "auto"
    user_id: str | None = None  # owner of every thread; None: the source's user, else "imported"
    dry_run: bool = False
    max_batch: int = 1000
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


class Importer:
    """Imports sources one after the other into one summary."""

    def __init__(self, options: Options, progress: Callable[[int], None] | None = None):
        self.options = options
        self.progress = progress
        self.summary = Summary(
            format=None if options.format == "auto" else options.format, dry_run=options.dry_run
        )
        self.known_users: set[str] = set()
        self.done_bytes = 0  # of earlier sources, for progress
        self.waiting: list[tuple[str, list[EventIn]]] = []  # validated, not yet written
        self.waiting_keys: dict[tuple[str, str], str] = {}  # (type, id) -> hash, of those

    async def run(self, source: Source) -> Summary:
        """Import one file (or request body)."""
        self.summary.files += 1
        items = read_items(source)
        peeked: list = []
        fatal: ReadError | None = None
        try:
            for got in items:
                peeked.append(got)
                if sum(isinstance(p, Item) for p in peeked) >= PEEK:
                    break
        except ReadError as exc:
            fatal = exc
        name = self.options.format
        if name == "auto":
            name = detect([p for p in peeked if isinstance(p, Item)])
            if name is None:
                found = fatal or next((p for p in peeked if isinstance(p, Failed)), None)
                message = found.message if found else "not a format this importer knows"
                position = str(found.position) if found else source.name
                kind = UNREADABLE if fatal else found.kind if found else "invalid"
                text = f"cannot recognise the format: {message}"
                self.summary.errors.append(Issue(position, text, kind))
                items.close()
                return self.summary
            self.summary.detected = True
        self.summary.format = self.summary.format or name
        self.summary.formats[name] += 1
        ctx = Context(self.options.user_id or "imported", self.options.user_id is not None)

        def stream() -> Iterator:
            yield from peeked
            if fatal is not None:
                raise fatal
            yield from items

        try:
            for result in MODULES[name].conversations(stream(), ctx):
                await self.handle(result)
                self._progress(source)
        except ReadError as exc:
            self.summary.errors.append(Issue(str(exc.position), exc.message, UNREADABLE))
        await self.flush()
        self._progress(source)
        self.done_bytes += source.size or 0
        return self.summary

    def _progress(self, source: Source) -> None:
        if self.progress is not None:
            self.progress(self.done_bytes + source.consumed())

    async def handle(self, result) -> None:
        if isinstance(result, Failed):
            self.summary.errors.append(Issue(str(result.position), result.message, result.kind))
            return
        if isinstance(result, Skipped):
            self.summary.skipped.append(Issue(str(result.position), result.reason))
            return
        self.summary.conversations += 1
        where = f"{result.position} (thread {result.thread_id})"
        events, problems, keys = self.validate(result, await self.events(result))
        if not problems:
            events, keys = await self._apart_from_waiting(events, keys)
            problems = await self.conflicts(result, events)
        if problems:
            more = len(problems) - PROBLEMS_SHOWN
            text = "; ".join(problems[:PROBLEMS_SHOWN]) + (f"; and {more} more" if more > 0 else "")
            self.summary.errors.append(Issue(where, f"not imported: {text}"))
            return
        if self.options.dry_run:
            for ev in events:
                self._count(ev.type, "valid")
            self.summary.imported += 1
            return
        if len(events) > self.options.max_batch:
            await self.flush()
            await self.write([(where, events)])
            return
        if sum(len(e) for _, e in self.waiting) + len(events) > self.options.max_batch:
            await self.flush()
        self.waiting.append((where, events))
        self.waiting_keys.update(keys)

    async def _apart_from_waiting(self, events: list[EventIn], keys: dict) -> tuple[list, dict]:
        """The conversation's events without the users waiting to be written with the same
        data; what else it shares with the waiting conversations is written first."""
        shared = keys.keys() & self.waiting_keys.keys()
        same_users = {k for k in shared if k[0] == "user" and keys[k] == self.waiting_keys[k]}
        if shared - same_users:
            await self.flush()
            return events, keys
        if same_users:
            events = [ev for ev in events if ("user", ev.id) not in same_users or ev.type != "user"]
            keys = {k: h for k, h in keys.items() if k not in same_users}
        return events, keys

    async def flush(self) -> None:
        """Write the conversations waiting, in one batch."""
        waiting, self.waiting, self.waiting_keys = self.waiting, [], {}
        if waiting:
            await self.write(waiting)

    async def events(self, conv: Conversation) -> list[tuple[dict, str]]:
        """The raw events of a conversation, users first, with where each came from."""
        out = [({"type": "user", "id": u.id, "data": u.data}, u.where) for u in conv.users]
        named = {u.id for u in conv.users}
        if conv.owner and conv.owner not in named and not await self._user_exists(conv.owner):
            out.append(({"type": "user", "id": conv.owner, "data": {}}, "owner"))
            if self.options.dry_run:
                self.known_users.add(conv.owner)
        if conv.thread is not None:
            out.append(({"type": "thread", "id": conv.thread_id, "data": conv.thread}, "thread"))
        for m in conv.messages:
            data = m.data if "thread_id" in m.data else {**m.data, "thread_id": conv.thread_id}
            out.append(({"type": "message", "id": m.id, "data": data}, m.where))
        out += [({"type": "feedback", "id": f.id, "data": f.data}, f.where) for f in conv.feedback]
        return out

    async def _user_exists(self, user_id: str) -> bool:
        if user_id in self.known_users:
            return True
        found = await User.get_pymongo_collection().find_one(
            {"org_id": self.options.org_id, "user_id": user_id}, {"_id": 1}
        )
        if found is not None:
            self.known_users.add(user_id)
        return found is not None

    def validate(self, conv: Conversation, raws: list[tuple[dict, str]]):
        """The events of a conversation and every problem ingest would find with them."""
        problems = list(conv.problems)
        events: list[EventIn] = []
        seen: dict[tuple[str, str], str] = {}  # (type, id) -> hash
        for index, (raw, where) in enumerate(raws):
            if not raw:
                continue
            try:
                event_in = EventIn.model_validate(raw)
            except ValidationError as exc:
                problems.append(f"{where}: {_first(exc)}")
                continue
            event = validate_event(event_in, index)
            if event.result is not None:
                err = event.result.error
                detail = "; ".join(f"{d['field']}: {d['message']}" for d in err.details[:3])
                problems.append(f"{where}: {err.message}" + (f" ({detail})" if detail else ""))
                continue
            key = (event.type, event.id)
            if key in seen:
                if seen[key] != event.hash:
                    problems.append(f"{where}: {event.type} {event.id!r} appears twice")
                continue
            seen[key] = event.hash
            problem = self.check(event)
            if problem:
                problems.append(f"{where}: {problem}")
            events.append(event_in)
        return events, problems, seen

    def check(self, ev: Event) -> str | None:
        """What building and storing the document would refuse."""
        org = self.options.org_id
        if ev.type == "message" and self._surely_fits(ev):
            return None
        try:
            if ev.type == "message":
                fields = fields_of(ev, "message_id", "thread_id")
                fields["content"] = ev.data.content
                doc = build_message(org, ev.data.thread_id, message_id=ev.id, **fields)
            elif ev.type == "thread":
                doc = new_thread(org, thread_id=ev.id, **fields_of(ev, "thread_id"))
            elif ev.type == "user":
                doc = users_service.new_user(org, ev.id, **fields_of(ev, "user_id"))
            else:
                return None
            size = document_size(doc)
        except ValidationError as exc:
            return f"invalid {ev.type}: {_first(exc)}"
        except (OverflowError, bson.errors.InvalidDocument, ValueError) as exc:
            return f"{ev.type} cannot be stored: {exc}"
        if size > self.options.max_message_bytes:
            return f"{ev.type} is {size} bytes; the limit is {self.options.max_message_bytes}"
        return None

    def _surely_fits(self, ev: Event) -> bool:
        """Whether a message is so far below the size limit that building it to measure is not
        needed: the stored document adds to the event's data only its text rendering and search
        terms, which together stay far below 39 times the data's BSON size. Values BSON cannot
        hold (integers past 64 bits, NUL in keys) fail here and are measured exactly."""
        try:
            rough = len(bson.encode(ev.data.model_dump()))
        except (OverflowError, bson.errors.InvalidDocument, ValueError):
            return False
        return rough * 40 + 4096 <= self.options.max_message_bytes

    async def conflicts(self, conv: Conversation, events: list[EventIn]) -> list[str]:
        """What only the database knows: a deleted thread, message ids of other threads."""
        org, problems = self.options.org_id, []
        threads = {ev.data["thread_id"] for ev in events if ev.type == "message"}
        threads |= {ev.id for ev in events if ev.type == "thread"}
        cursor = Thread.get_pymongo_collection().find(
            Thread.keyed(org, (t for t in threads if isinstance(t, str))),
            {"thread_id": 1, "status": 1},
        )
        async for doc in cursor:
            if doc.get("status") == "deleted":
                problems.append(
                    f"thread {doc['thread_id']!r} exists and is deleted (restore it first)"
                )
        wanted = {ev.id: ev.data.get("thread_id") for ev in events if ev.type == "message"}
        ids = sorted(wanted)
        for start in range(0, len(ids), LOOKUP):
            cursor = Message.get_pymongo_collection().find(
                Message.keyed(org, ids[start : start + LOOKUP]), {"message_id": 1, "thread_id": 1}
            )
            async for doc in cursor:
                if doc.get("thread_id") != wanted[doc["message_id"]]:
                    problems.append(
                        f"message {doc['message_id']!r} already belongs to thread "
                        f"{doc.get('thread_id')!r}"
                    )
        return problems

    async def write(self, conversations: list[tuple[str, list[EventIn]]]) -> None:
        """Apply validated conversations, in chunks of at most the batch limit; each is
        reported as imported or as partly written."""
        size = max(1, self.options.max_batch)
        events = [ev for _, evs in conversations for ev in evs]
        results = []
        for start in range(0, len(events), size):
            batch = Batch(
                self.options.org_id,
                self.options.actor,
                max_message_bytes=self.options.max_message_bytes,
            )
            results += await ingest(batch, events[start : start + size])
        at = 0
        for where, evs in conversations:
            failures = []
            for result in results[at : at + len(evs)]:
                if result.status == "error":
                    failures.append(f"{result.type} {result.id}: {result.error.message}")
                else:
                    self._count(result.type, result.status)
                    if result.type == "user":
                        self.known_users.add(result.id)
            at += len(evs)
            if failures:
                text = "; ".join(failures[:PROBLEMS_SHOWN])
                self.summary.errors.append(
                    Issue(where, f"partly written ({text}); importing again completes it")
                )
            else:
                self.summary.imported += 1

    def _count(self, kind: str, status: str) -> None:
        counter = {
            "thread": self.summary.threads,
            "message": self.summary.messages,
            "user": self.summary.users,
        }.get(kind)
        if counter is not None:
            counter[status] += 1


def _first(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]
