"""The native format: what `manage.py export --format native` writes, read back.

JSONL. The first line is a header, `{"chatadmin": "native", "version": 1, ...}`; every other line
is an ingest event exactly as `POST /ingest` takes it (`{"type", "id", "data"}`): `user`, then
each `thread` followed by its `message`s in seq order and their `feedback`. Ids are kept as they
are, so an export imported into an empty org gives the same documents, and a second import of it
is all `unchanged`. A conversation here is a thread and the lines up to the next thread; users
named inside it are written with its first chunk, so their counters count its messages.
"""

from __future__ import annotations

from typing import Any

from chatadmin.transfer.formats.common import Context, Conversation, Failed, Record

NAME = "native"
HEADER = {"chatadmin": "native", "version": 1}
TYPES = ("user", "thread", "message", "feedback")


def is_header(value: Any) -> bool:
    return isinstance(value, dict) and value.get("chatadmin") == "native"


def looks_like(value: Any) -> bool:
    return is_header(value) or (
        isinstance(value, dict)
        and value.get("type") in TYPES
        and "id" in value
        and isinstance(value.get("data"), dict)
    )


def conversations(items, ctx: Context):
    current: Conversation | None = None
    users: list[Record] = []  # users read before the next thread
    for item in items:
        if isinstance(item, Failed):
            if current is not None:
                current.problems.append(f"{item.position}: {item.message}")
            else:
                yield item
            continue
        value = item.value
        where = f"line {item.position.line}" if item.position.line else str(item.position)
        if is_header(value):
            if value.get("version") != HEADER["version"]:
                yield Failed(item.position, f"unsupported native version {value.get('version')!r}")
                return
            continue
        if not looks_like(value):
            problem = "not a native record (expected {type, id, data} with a type of " + (
                ", ".join(TYPES) + ")"
            )
            if current is not None:
                current.problems.append(f"{where}: {problem}")
            else:
                yield Failed(item.position, problem)
            continue
        kind, rid, data = value["type"], value["id"], value["data"]
        record = Record(rid if isinstance(rid, str) else str(rid), data, where)
        if kind == "user":
            (current.users if current is not None else users).append(record)
        elif kind == "thread":
            if current is not None:
                yield current
            current = Conversation(item.position, record.id, thread=data, users=users)
            users = []
        else:
            tid = data.get("thread_id") if kind == "message" else None
            if current is None or (kind == "message" and tid != current.thread_id):
                if current is not None:
                    yield current
                current = Conversation(
                    item.position, tid if isinstance(tid, str) else None, users=users
                )
                users = []
            (current.messages if kind == "message" else current.feedback).append(record)
    if current is not None:
        yield current
    elif users:
        yield Conversation(item.position, None, users=users)
