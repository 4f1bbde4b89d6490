"""Executions: created (any status; times stamped as if it moved there) and moved through
pending -> running -> success | failed atomically, with what a change updates elsewhere: the
linked message's `execution_status`, and the analytics of the day the execution was created.

REST (one at a time) and /ingest (in bulk) both write through `create_executions` and
`change_executions`; `list_executions` reads them newest first, by thread, status or user.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import TypeAdapter
from pymongo import UpdateOne

from chatadmin.clock import now_ms
from chatadmin.exceptions import Conflict, Invalid, InvalidTransition, NotFound
from chatadmin.models import Execution, Message
from chatadmin.models.execution import EXECUTION_PAGE_MAX, TRANSITIONS
from chatadmin.services import analytics
from chatadmin.services.documents import insert_new
from chatadmin.services.effects import Effects
from chatadmin.services.pagination import NewestFirst, Page, clamp_limit, newest_first

FINAL_FIELDS = {
    "result", "error", "warnings", "mcp_calls", "mcp_errors", "memory_used_mb", "cpu_percent",
    "cache_hit", "cache_key", "execution_ms", "metadata",
}  # fmt: skip
FINISHED = ("success", "failed")


def _timed(changes: dict[str, Any], status: str, started_ms: int, now: int) -> dict[str, Any]:
    """The times a move to `status` stamps (and the run time, when the client gave none)."""
    if status == "running":
        changes["started_at_ms"] = now
    elif status in FINISHED:
        changes["completed_at_ms"] = now
        if started_ms and changes.get("execution_ms") is None:
            changes["execution_ms"] = now - started_ms
        changes.setdefault("started_at_ms", started_ms or now)
    return changes


async def create_executions(
    org_id: str, runs: list[Execution], *, effects: Effects | None = None
) -> list[Execution]:
    """Store new executions in one write; returns those stored (an existing id is skipped)."""
    now = now_ms()
    for run in runs:
        if run.status != "pending":
            stamped = _timed({"execution_ms": run.execution_ms}, run.status, 0, now)
            for name, value in stamped.items():
                setattr(run, name, value)
    own = effects is None
    effects = effects or Effects(org_id)
    await effects.begin({r.user_id for r in runs}, {r.created_at for r in runs})
    created = await insert_new(Execution, runs)
    await _follow(org_id, created, effects)
    if own:
        await effects.flush()
    return created


async def create_execution(org_id: str, **fields: Any) -> Execution:
    run = Execution(org_id=org_id, **fields)
    if not await create_executions(org_id, [run]):
        raise Conflict(f"execution {run.execution_id!r} already exists")
    return run


async def get_execution(org_id: str, execution_id: str) -> Execution:
    run = await Execution.find_one({"org_id": org_id, "execution_id": str(execution_id)})
    if run is None:
        raise NotFound(f"execution {execution_id!r} not found")
    return run


EXECUTION_ORDER = NewestFirst("created_at_ms", "execution_id")
EXECUTIONS = TypeAdapter(list[Execution])


async def list_executions(
    org_id: str,
    *,
    thread_id: str | None = None,
    status: str | None = None,
    user_id: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[Execution]:
    """The org's executions newest first, of a thread, a status and a user when given (each
    filter an index of `Execution.Settings` serves); keyset-paginated, up to
    `EXECUTION_PAGE_MAX` a page."""
    limit = clamp_limit(limit, 20, EXECUTION_PAGE_MAX)
    pos = EXECUTION_ORDER.position(cursor)
    query: dict[str, Any] = {"org_id": org_id}
    if thread_id is not None:
        query["thread_id"] = str(thread_id)
    if status is not None:
        if status not in TRANSITIONS:
            raise Invalid(f"status must be one of {', '.join(TRANSITIONS)}")
        query["status"] = status
    if user_id is not None:
        query["user_id"] = str(user_id)
    coll = Execution.get_pymongo_collection()
    docs, nxt = await newest_first(coll, query, EXECUTION_ORDER, limit, pos)
    return Page(EXECUTIONS.validate_python(docs), nxt)


@dataclass
class StatusChange:
    """A requested change of one execution, and what became of it."""

    execution_id: str
    status: str
    fields: dict[str, Any] = field(default_factory=dict)
    ingest_hash: str | None = None
    must_move: bool = False  # the same status is then refused, not taken as a field update
    outcome: Literal["updated", "not_found", "invalid_transition"] = "updated"
    message: str = ""
    before: Execution | None = None
    run: Execution | None = None


async def change_executions(
    org_id: str, changes: list[StatusChange], *, effects: Effects | None = None
) -> list[StatusChange]:
    """Apply each change if the machine allows it from the stored status (the same status
    just updates fields); the stored status is in the filter, so a concurrent change wins or
    this one does."""
    ids = sorted({c.execution_id for c in changes})
    found = Execution.find(Execution.keyed(org_id, ids))
    stored = {r.execution_id: r for r in await found.to_list()}
    now = now_ms()
    ops, applied = [], []
    for ch in changes:
        current = stored.get(ch.execution_id)
        if current is None:
            ch.outcome, ch.message = "not_found", f"execution {ch.execution_id!r} not found"
            continue
        ch.before = current
        moving = ch.status != current.status
        if (moving or ch.must_move) and ch.status not in TRANSITIONS[current.status]:
            ch.outcome = "invalid_transition"
            ch.message = f"execution cannot go from {current.status} to {ch.status}"
            continue
        updates = {**ch.fields, "status": ch.status}
        if moving:
            _timed(updates, ch.status, current.started_at_ms, now)
        run = Execution.model_validate({**current.model_dump(by_alias=True), **updates})
        run.updated_at_ms, run.ingest_hash = now, ch.ingest_hash or current.ingest_hash
        names = {*updates, "updated_at_ms", "ingest_hash"}
        ops.append(
            (
                {"org_id": org_id, "execution_id": ch.execution_id, "status": current.status},
                {"$set": run.storage_fields(names)},
            )
        )
        ch.run = run
        applied.append(ch)
    own = effects is None
    effects = effects or Effects(org_id)
    befores = [c.before for c in applied]
    await effects.begin({r.user_id for r in befores}, {r.created_at for r in befores})
    # One update per change, so each knows whether its status filter still matched: one that
    # no longer did lost to a concurrent change.
    coll = Execution.get_pymongo_collection()
    results = await asyncio.gather(*(coll.update_one(query, update) for query, update in ops))
    for ch, result in zip(applied, results, strict=True):
        if result.matched_count == 0:
            latest = await coll.find_one(
                {"org_id": org_id, "execution_id": ch.execution_id}, {"status": 1}
            )
            ch.outcome = "invalid_transition"
            status = latest["status"] if latest else "?"
            ch.message = f"execution cannot go from {status} to {ch.status}"
    done = [c for c in applied if c.outcome == "updated"]
    finished = [c.run for c in done if c.run.status != c.before.status]
    await _follow(org_id, finished, effects)
    if own:
        await effects.flush()
    return changes


async def transition(org_id: str, execution_id: str, status: str, **fields: Any) -> Execution:
    """Change one execution's status if the machine allows it; else InvalidTransition."""
    unknown = set(fields) - FINAL_FIELDS
    if unknown:
        raise InvalidTransition(f"cannot set {sorted(unknown)} on a status change")
    change = StatusChange(str(execution_id), status, fields, must_move=True)
    (ch,) = await change_executions(org_id, [change])
    if ch.outcome == "not_found":
        raise NotFound(ch.message)
    if ch.outcome != "updated":
        raise InvalidTransition(ch.message)
    return ch.run


async def _follow(org_id: str, runs: list[Execution], effects: Effects) -> None:
    """What runs that reached their status change elsewhere: the linked messages' status, and
    the counters of the day each run was created, once it finished."""
    linked = [
        UpdateOne(
            {"org_id": org_id, "message_id": r.message_id},
            {"$set": {"execution_status": r.status, "updated_at_ms": now_ms()}},
        )
        for r in runs
        if r.message_id
    ]
    if linked:
        await Message.get_pymongo_collection().bulk_write(linked, ordered=False)
    for r in runs:
        effects.count(
            r.user_id, r.created_at, **analytics.execution_counters(r.status, r.execution_ms)
        )
