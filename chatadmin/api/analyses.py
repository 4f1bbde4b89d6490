"""`/analyses` and `/saved-analyses`: reusable analyses, search, reuse without an LLM."""

from __future__ import annotations

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import Response

from chatadmin.api.auth import record
from chatadmin.api.http import no_content, path_id, read_json, read_query, respond
from chatadmin.api.spec import Endpoint
from chatadmin.models import Analysis, SavedAnalysis
from chatadmin.models.analysis import (
    AnalysisIn,
    AnalysisOut,
    AnalysisQuery,
    ReuseIn,
    ReuseOut,
    SavedAnalysisIn,
    SavedAnalysisOut,
    SavedListQuery,
)
from chatadmin.services import analyses

ANALYSES_OUT = TypeAdapter(list[AnalysisOut])


def analysis_out(analysis) -> dict:
    return AnalysisOut.model_validate(analysis).model_dump(mode="json")


async def create_analysis(request: Request) -> Response:
    key = request.state.api_key
    body = await read_json(request, AnalysisIn)
    analysis = await analyses.create_analysis(key.org_id, **body.model_dump(exclude_none=True))
    await record(
        request,
        "analysis_created",
        Analysis,
        analysis.analysis_id,
        after={"title": analysis.title},
    )
    return respond(analysis_out(analysis), 201)


async def get_analysis(request: Request) -> Response:
    key = request.state.api_key
    analysis = await analyses.get_analysis(key.org_id, path_id(request, "analysis_id"))
    return respond(analysis_out(analysis))


async def search_analyses(request: Request) -> Response:
    key = request.state.api_key
    q = read_query(request, AnalysisQuery)
    page = await analyses.find_analyses(
        key.org_id,
        q=q.q,
        tag=q.tag,
        user_id=q.user_id,
        reusable=q.reusable,
        limit=q.limit,
        cursor=q.cursor,
    )
    items = ANALYSES_OUT.dump_python(ANALYSES_OUT.validate_python(page.items), mode="json")
    return respond({"items": items, "next_cursor": page.next_cursor})


async def reuse_analysis(request: Request) -> Response:
    key = request.state.api_key
    analysis_id = path_id(request, "analysis_id")
    body = await read_json(request, ReuseIn)
    analysis, parameters = await analyses.reuse_analysis(
        key.org_id, analysis_id, question=body.question, parameters=body.parameters
    )
    await record(
        request,
        "analysis_reused",
        Analysis,
        analysis_id,
        after={"usage_count": analysis.usage_count},
    )
    return respond(ReuseOut(analysis=AnalysisOut.model_validate(analysis), parameters=parameters))


async def create_saved(request: Request) -> Response:
    key = request.state.api_key
    body = await read_json(request, SavedAnalysisIn)
    fields = body.model_dump(exclude_none=True, exclude={"user_id", "analysis_id", "name"})
    saved = await analyses.save_analysis(
        key.org_id, body.user_id, body.analysis_id, body.name, **fields
    )
    await record(
        request,
        "analysis_saved",
        SavedAnalysis,
        saved.saved_id,
        after={"analysis_id": saved.analysis_id, "name": saved.name},
    )
    return respond(SavedAnalysisOut.model_validate(saved), 201)


async def list_saved(request: Request) -> Response:
    key = request.state.api_key
    q = read_query(request, SavedListQuery)
    found = await analyses.list_saved(key.org_id, q.user_id, q.limit)
    items = [SavedAnalysisOut.model_validate(s).model_dump(mode="json") for s in found]
    return respond({"items": items, "next_cursor": None})


async def get_saved(request: Request) -> Response:
    key = request.state.api_key
    saved = await analyses.get_saved(key.org_id, path_id(request, "saved_id"))
    return respond(SavedAnalysisOut.model_validate(saved))


async def delete_saved(request: Request) -> Response:
    key = request.state.api_key
    saved_id = path_id(request, "saved_id")
    await analyses.delete_saved(key.org_id, saved_id)
    await record(request, "saved_analysis_deleted", SavedAnalysis, saved_id)
    return no_content()


ENDPOINTS = [
    Endpoint(
        "POST",
        "/analyses",
        create_analysis,
        "Store an analysis",
        "analyses",
        scope="ingest",
        body=AnalysisIn,
        response=AnalysisOut,
        status=201,
        errors=(401, 403, 409, 413, 415, 422),
    ),
    Endpoint(
        "GET",
        "/analyses",
        search_analyses,
        "List analyses newest first (paged), or search them by full text (see `q`)",
        "analyses",
        query=AnalysisQuery,
        response=AnalysisOut,
        many=True,
        errors=(401, 403, 422),
    ),
    Endpoint(
        "GET",
        "/analyses/{analysis_id}",
        get_analysis,
        "An analysis",
        "analyses",
        response=AnalysisOut,
        errors=(401, 403, 404),
    ),
    Endpoint(
        "POST",
        "/analyses/{analysis_id}/reuse",
        reuse_analysis,
        "Reuse an analysis without an LLM (records the use)",
        "analyses",
        scope="ingest",
        body=ReuseIn,
        response=ReuseOut,
        errors=(401, 403, 404, 409, 415, 422),
    ),
    Endpoint(
        "POST",
        "/saved-analyses",
        create_saved,
        "Save an analysis as a template",
        "analyses",
        scope="ingest",
        body=SavedAnalysisIn,
        response=SavedAnalysisOut,
        status=201,
        errors=(401, 403, 404, 409, 415, 422),
    ),
    Endpoint(
        "GET",
        "/saved-analyses",
        list_saved,
        "List saved analyses",
        "analyses",
        query=SavedListQuery,
        response=SavedAnalysisOut,
        many=True,
        errors=(401, 403, 422),
    ),
    Endpoint(
        "GET",
        "/saved-analyses/{saved_id}",
        get_saved,
        "A saved analysis",
        "analyses",
        response=SavedAnalysisOut,
        errors=(401, 403, 404),
    ),
    Endpoint(
        "DELETE",
        "/saved-analyses/{saved_id}",
        delete_saved,
        "Delete a saved analysis",
        "analyses",
        scope="ingest",
        status=204,
        errors=(401, 403, 404),
    ),
]
