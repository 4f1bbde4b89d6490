"""Analyses: create, full-text search, reusable templates, reuse without an LLM, saved analyses."""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from chatadmin import search
from chatadmin.clock import stamp, to_ms, utcnow
from chatadmin.exceptions import Conflict, Invalid, NotFound
from chatadmin.models import Analysis, SavedAnalysis
from chatadmin.models.analysis import ANALYSIS_PAGE_MAX
from chatadmin.realtime import events
from chatadmin.services.pagination import NewestFirst, Page, clamp_limit, newest_first

MAX_SIMILAR_QUERIES = 50


async def create_analysis(org_id: str, **fields: Any) -> Analysis:
    analysis = Analysis(org_id=org_id, **fields)
    try:
        await analysis.insert()
    except DuplicateKeyError as exc:
        raise Conflict(f"analysis {analysis.analysis_id!r} already exists") from exc
    if analysis.thread_id:
        await events.touched(org_id, {analysis.thread_id})
    return analysis


async def get_analysis(org_id: str, analysis_id: str) -> Analysis:
    found = await Analysis.find_one({"org_id": org_id, "analysis_id": str(analysis_id)})
    if found is None:
        raise NotFound(f"analysis {analysis_id!r} not found")
    return found


ANALYSIS_ORDER = NewestFirst("created_at_ms", "analysis_id")
ANALYSES = TypeAdapter(list[Analysis])
RANKED_IN_ONE_PAGE = "a text search ranked by score comes in one page: it takes no cursor"


async def find_analyses(
    org_id: str,
    *,
    q: str | None = None,
    tag: str | None = None,
    user_id: str | None = None,
    reusable: bool | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[Analysis]:
    """Analyses newest first, keyset-paginated (up to `ANALYSIS_PAGE_MAX` a page), or those
    matching a full-text search over title and description.

    Every word of `q` must match. In terms search mode matches are newest first and paged like
    the list; in text search mode they are ordered best first by MongoDB's text score and come
    in one page with no cursor (a score is no keyset), where a cursor is refused.
    """
    limit = clamp_limit(limit, 20, ANALYSIS_PAGE_MAX)
    pos = ANALYSIS_ORDER.position(cursor)
    query: dict[str, Any] = {"org_id": org_id}
    if tag is not None:
        query["tags"] = {"$in": [str(tag)]}
    if user_id is not None:
        query["user_id"] = str(user_id)
    if reusable is not None:
        query["is_template"] = bool(reusable)
    if q is not None and q.strip():
        if len(q) > 500:
            raise Invalid("search text is limited to 500 characters")
        matching = search.condition(q)
        if matching is None:
            return Page()  # only stop words or punctuation: nothing to look for
        query.update(matching)
        if search.ranks_by_score():
            if pos is not None:
                raise Invalid(RANKED_IN_ONE_PAGE, [{"field": "cursor", "message": "not paged"}])
            return Page(await _best_first(query, limit))
    coll = Analysis.get_pymongo_collection()
    docs, nxt = await newest_first(coll, query, ANALYSIS_ORDER, limit, pos)
    return Page(ANALYSES.validate_python(docs), nxt)


async def search_analyses(org_id: str, *, limit: int = 20, **filters: Any) -> list[Analysis]:
    """The first page of `find_analyses`, as a list."""
    return (await find_analyses(org_id, limit=limit, **filters)).items


async def _best_first(query: dict[str, Any], limit: int) -> list[Analysis]:
    """A `$text` query's matches by text score."""
    # nx-27017 returns only _id and the score when the projection names just the score.
    projection = {(f.alias or n): 1 for n, f in Analysis.model_fields.items()}
    docs = (
        await Analysis.get_pymongo_collection()
        .find(query, {**projection, "score": {"$meta": "textScore"}})
        .sort([("score", {"$meta": "textScore"})])
        .limit(limit)
        .to_list()
    )
    return [Analysis.model_validate({k: v for k, v in d.items() if k != "score"}) for d in docs]


async def reusable_analyses(
    org_id: str, *, user_id: str | None = None, limit: int = 50
) -> list[Analysis]:
    """Templates that can answer a question again without an LLM, most recently used first."""
    query: dict[str, Any] = {"org_id": org_id, "is_template": True}
    if user_id is not None:
        query["user_id"] = str(user_id)
    return (
        await Analysis.find(query)
        .sort([("last_used_at_ms", -1), ("created_at_ms", -1)])
        .limit(max(1, min(limit, 200)))
        .to_list()
    )


def can_reuse(analysis: Analysis, question: str | None = None) -> bool:
    """Whether an analysis may answer `question` again: a template, or a known similar query."""
    if analysis.is_template:
        return True
    if question is None:
        return False
    norm = re.sub(r"\s+", " ", question).strip().casefold()
    known = {re.sub(r"\s+", " ", s).strip().casefold() for s in analysis.similar_queries}
    return norm in known


async def reuse_analysis(
    org_id: str,
    analysis_id: str,
    *,
    question: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> tuple[Analysis, dict[str, Any]]:
    """Record a reuse (usage count, last used, the question) and return the merged parameters."""
    analysis = await get_analysis(org_id, analysis_id)
    if not can_reuse(analysis, question):
        raise Conflict(f"analysis {analysis_id!r} is not reusable")
    now = utcnow()
    update: dict[str, Any] = {
        "$inc": {"usage_count": 1},
        "$set": {"last_used_at_ms": to_ms(now), **stamp(now)},
    }
    if question and question.strip():
        update["$push"] = {
            "similar_queries": {"$each": [question.strip()], "$slice": -MAX_SIMILAR_QUERIES}
        }
    doc = await Analysis.get_pymongo_collection().find_one_and_update(
        {"org_id": org_id, "analysis_id": str(analysis_id)},
        update,
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        raise NotFound(f"analysis {analysis_id!r} not found")
    updated = Analysis.model_validate(doc)
    return updated, {**updated.parameters, **(parameters or {})}


async def save_analysis(
    org_id: str, user_id: str, analysis_id: str, name: str, **fields: Any
) -> SavedAnalysis:
    """Save an analysis as a user's template."""
    analysis = await get_analysis(org_id, analysis_id)
    saved = SavedAnalysis(
        org_id=org_id,
        user_id=user_id,
        analysis_id=analysis.analysis_id,
        name=name,
        category=fields.pop("category", analysis.category),
        tags=fields.pop("tags", list(analysis.tags)),
        **fields,
    )
    try:
        await saved.insert()
    except DuplicateKeyError as exc:
        raise Conflict(f"saved analysis {saved.saved_id!r} already exists") from exc
    return saved


async def list_saved(
    org_id: str, user_id: str | None = None, limit: int = 50
) -> list[SavedAnalysis]:
    query: dict[str, Any] = {"org_id": org_id}
    if user_id is not None:
        query["user_id"] = str(user_id)
    return (
        await SavedAnalysis.find(query)
        .sort([("created_at_ms", -1), ("saved_id", -1)])
        .limit(max(1, min(limit, 200)))
        .to_list()
    )


async def get_saved(org_id: str, saved_id: str) -> SavedAnalysis:
    found = await SavedAnalysis.find_one({"org_id": org_id, "saved_id": str(saved_id)})
    if found is None:
        raise NotFound(f"saved analysis {saved_id!r} not found")
    return found


async def use_saved(org_id: str, saved_id: str) -> SavedAnalysis:
    """Record a use of a saved analysis."""
    now = utcnow()
    doc = await SavedAnalysis.get_pymongo_collection().find_one_and_update(
        {"org_id": org_id, "saved_id": str(saved_id)},
        {
            "$inc": {"usage_count": 1},
            "$set": {"last_used_at_ms": to_ms(now), **stamp(now)},
        },
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        raise NotFound(f"saved analysis {saved_id!r} not found")
    return SavedAnalysis.model_validate(doc)


async def delete_saved(org_id: str, saved_id: str) -> None:
    result = await SavedAnalysis.get_pymongo_collection().delete_one(
        {"org_id": org_id, "saved_id": str(saved_id)}
    )
    if result.deleted_count == 0:
        raise NotFound(f"saved analysis {saved_id!r} not found")
