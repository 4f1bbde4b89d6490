"""`/executions`: script runs, their status machine (409 on an impossible transition), and
their lists newest first."""

from __future__ import annotations

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import Response

from chatadmin.api.auth import record
from chatadmin.api.http import path_id, read_json, read_query, respond
from chatadmin.api.spec import Endpoint
from chatadmin.models import Execution
from chatadmin.models.execution import (
    ExecutionIn,
    ExecutionListQuery,
    ExecutionOut,
    ExecutionPatch,
)
from chatadmin.services import executions


async def create_execution(request: Request) -> Response:
    key = request.state.api_key
    body = await read_json(request, ExecutionIn)
    run = await executions.create_execution(key.org_id, **body.model_dump(exclude_none=True))
    await record(
        request,
        "execution_created",
        Execution,
        run.execution_id,
        after={"status": run.status},
    )
    return respond(ExecutionOut.model_validate(run), 201)


EXECUTIONS_OUT = TypeAdapter(list[ExecutionOut])


async def list_executions(request: Request) -> Response:
    key = request.state.api_key
    q = read_query(request, ExecutionListQuery)
    page = await executions.list_executions(
        key.org_id,
        thread_id=q.thread_id,
        status=q.status,
        user_id=q.user_id,
        limit=q.limit,
        cursor=q.cursor,
    )
    items = EXECUTIONS_OUT.dump_python(EXECUTIONS_OUT.validate_python(page.items), mode="json")
    return respond({"items": items, "next_cursor": page.next_cursor})


async def get_execution(request: Request) -> Response:
    key = request.state.api_key
    run = await executions.get_execution(key.org_id, path_id(request, "execution_id"))
    return respond(ExecutionOut.model_validate(run))


async def update_execution(request: Request) -> Response:
    key = request.state.api_key
    execution_id = path_id(request, "execution_id")
    body = await read_json(request, ExecutionPatch)
    fields = body.model_dump(exclude_none=True, exclude={"status"})
    before = await executions.get_execution(key.org_id, execution_id)
    run = await executions.transition(key.org_id, execution_id, body.status, **fields)
    await record(
        request,
        "execution_status_changed",
        Execution,
        execution_id,
        before={"status": before.status},
        after={"status": run.status},
    )
    return respond(ExecutionOut.model_validate(run))


ENDPOINTS = [
    Endpoint(
        "POST",
        "/executions",
        create_execution,
        "Record a script run (pending)",
        "executions",
        scope="ingest",
        body=ExecutionIn,
        response=ExecutionOut,
        status=201,
        errors=(401, 403, 409, 413, 415, 422),
    ),
    Endpoint(
        "GET",
        "/executions",
        list_executions,
        "List script runs newest first, by thread, status or user (paged)",
        "executions",
        query=ExecutionListQuery,
        response=ExecutionOut,
        many=True,
        errors=(401, 403, 422),
    ),
    Endpoint(
        "GET",
        "/executions/{execution_id}",
        get_execution,
        "A script run",
        "executions",
        response=ExecutionOut,
        errors=(401, 403, 404),
    ),
    Endpoint(
        "PATCH",
        "/executions/{execution_id}",
        update_execution,
        "Move a run to running, success or failed",
        "executions",
        scope="ingest",
        body=ExecutionPatch,
        response=ExecutionOut,
        errors=(401, 403, 404, 409, 415, 422),
    ),
]
