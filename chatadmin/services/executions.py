"""Executions: create, and move through pending -> running -> success | failed, atomically."""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from chatadmin.clock import stamp, to_ms, utcnow
from chatadmin.exceptions import Conflict, InvalidTransition, NotFound
from chatadmin.models import Execution, Message
from chatadmin.models.execution import TRANSITIONS
from chatadmin.services import analytics

FINAL_FIELDS = {
    "result", "error", "warnings", "mcp_calls", "mcp_errors", "memory_used_mb", "cpu_percent",
    "cache_hit", "cache_key", "execution_ms", "metadata",
}  # fmt: skip


async def create_execution(org_id: str, **fields: Any) -> Execution:
    run = Execution(org_id=org_id, **fields)
    if run.status != "pending":
        raise InvalidTransition("a new execution starts as pending")
    try:
        await run.insert()
    except DuplicateKeyError as exc:
        raise Conflict(f"execution {run.execution_id!r} already exists") from exc
    return run


async def get_execution(org_id: str, execution_id: str) -> Execution:
    run = await Execution.find_one({"org_id": org_id, "execution_id": str(execution_id)})
    if run is None:
        raise NotFound(f"execution {execution_id!r} not found")
    return run


async def transition(org_id: str, execution_id: str, status: str, **fields: Any) -> Execution:
    """Change status if the machine allows it from the stored status; else InvalidTransition."""
    sources = [src for src, targets in TRANSITIONS.items() if status in targets]
    unknown = set(fields) - FINAL_FIELDS
    if unknown:
        raise InvalidTransition(f"cannot set {sorted(unknown)} on a status change")
    current = await get_execution(org_id, execution_id)
    if current.status not in sources:
        raise InvalidTransition(f"execution cannot go from {current.status} to {status}")
    now = utcnow()
    changes: dict[str, Any] = {"status": status, **fields, **stamp(now)}
    if status == "running":
        changes["started_at_ms"] = to_ms(now)
    else:
        changes["completed_at_ms"] = to_ms(now)
        if "execution_ms" not in fields and current.started_at_ms:
            changes["execution_ms"] = to_ms(now) - current.started_at_ms
    validated = Execution.model_validate({**current.model_dump(by_alias=True), **changes})
    # The status in the filter makes the change atomic: a concurrent transition wins or we do.
    doc = await Execution.get_pymongo_collection().find_one_and_update(
        {"org_id": org_id, "execution_id": str(execution_id), "status": current.status},
        {"$set": validated.storage_fields(set(changes))},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        latest = await get_execution(org_id, execution_id)
        raise InvalidTransition(f"execution cannot go from {latest.status} to {status}")
    run = Execution.model_validate(doc)
    if run.message_id:
        await Message.get_pymongo_collection().update_one(
            {"org_id": org_id, "message_id": run.message_id},
            {"$set": {"execution_status": status, **stamp(now)}},
        )
    if status in ("success", "failed"):
        await analytics.record(
            org_id,
            run.user_id,
            run.created_at,
            executions_success=int(status == "success"),
            executions_failed=int(status == "failed"),
            execution_ms_sum=run.execution_ms or 0,
        )
    return run
