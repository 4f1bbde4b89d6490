"""List exports (CSV and JSON), streamed: rows are read from a cursor and written one at a
time, so an export's memory does not grow with its size.

The row cap is checked against the rows themselves (an id-only read of at most cap + 1 rows),
never against the list's capped count; JSON columns are written as JSON; CSV cells that a
spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return) are prefixed
with `'` (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette_admin.exceptions import ActionFailed
from starlette_admin.export.helpers import safe_cd_filename
from starlette_admin.types import RequestAction

from chatadmin.db import read_ahead

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: JSON for structures, formulas neutralised."""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    elif value is None:
        return ""
    elif not isinstance(value, str):
        return value
    return "'" + value if value.startswith(FORMULA_START) else value


async def _query(view, request: Request, selection, scope: str) -> tuple[dict, list, int, int]:
    """The Mongo query, sort, skip and limit of what the export covers."""
    if scope != "page" and not selection.is_select_all:
        pks = [str(p) for p in await selection.pks()]
        return {"_id": {"$in": pks}, **view.scope(request)}, [("_id", 1)], 0, len(pks)
    listed = QueryParams((request.query_params.get("_list_query") or "").lstrip("?"))
    params = view._parse_list_params(request, listed)
    view.refuse_masked(request, [name for name, _ in params.sorts or []], "sort")
    query = await view.build_query(request, params.q, params.filters)
    skip, limit = 0, 0
    if scope == "page" and params.page_size > 0:
        skip, limit = (params.page - 1) * params.page_size, params.page_size
    return query, view.sort_spec(params.sorts), skip, limit


async def export_response(view, request: Request, selection, max_rows: int) -> StreamingResponse:
    """The export the form asked for, as a download (ActionFailed when it cannot be)."""
    form = await request.form()
    fmt = str(form.get("format") or "")
    if fmt not in FORMATS:
        raise ActionFailed(f"Unknown export format {fmt!r}")
    scope = str(form.get("scope") or "page")
    request.state.action = RequestAction.EXPORT
    exportable = list(view.get_fields_list(request, action=RequestAction.EXPORT))
    chosen = set(form.getlist("fields"))
    fields = [f for f in exportable if f.name in chosen] or exportable
    query, sort, skip, limit = await _query(view, request, selection, scope)
    cap = min(limit, max_rows) if limit else max_rows
    coll = view.document.get_pymongo_collection()
    ids = await coll.find(query, {"_id": 1}).skip(skip).limit(cap + 1).to_list()
    if len(ids) > max_rows:
        raise ActionFailed(
            f"This export would hold more than {max_rows:,} rows; filter the list to narrow it."
        )
    name = safe_cd_filename(str(form.get("filename") or "").strip() or view.key or "export")
    cursor = view.document.find(query).sort(sort).skip(skip).limit(cap)
    rows = _rows(view, request, cursor, fields)
    body = _csv(rows, fields) if fmt == "csv" else _json(rows)
    headers = {"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}
    # read_ahead: a client that hangs up must not cancel a PyMongo call (chatadmin/db.py)
    return StreamingResponse(read_ahead(body), media_type=FORMATS[fmt], headers=headers)


async def _rows(view, request: Request, cursor, fields) -> AsyncIterator[dict]:
    async for doc in cursor:
        shown = view.present(request, doc)
        data = await view.serialize(shown, request, include_relationships=False)
        yield {f.name: data.get(f.name) for f in fields}


async def _csv(rows: AsyncIterator[dict], fields) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([csv_cell(f.label or f.name) for f in fields])
    yield flush()
    async for row in rows:
        writer.writerow([csv_cell(row[f.name]) for f in fields])
        yield flush()


async def _json(rows: AsyncIterator[dict]) -> AsyncIterator[str]:
    yield "["
    first = True
    async for row in rows:
        yield ("" if first else ",\n") + json.dumps(row, ensure_ascii=False, default=str)
        first = False
    yield "]\n"
