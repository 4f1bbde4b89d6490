"""`analyses` (reusable analyses) and `saved_analyses` (a user's saved templates)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from chatadmin.models.base import (
    ClientId,
    Embedded,
    JsonObject,
    JsonValue,
    StorageSettings,
    TenantDocument,
    index,
    ms_property,
    new_id,
)
from chatadmin.models.jsonfield import ClientJsonObject
from chatadmin.models.schema import ApiDatetime, ApiIn, ApiOut, ApiQuery, Tags
from chatadmin.search import TERMS, TEXT


class ResultRow(Embedded):
    """One key/value row of an analysis result, with its explanation."""

    key: str
    value: JsonValue = None
    description: str | None = None


class AnalysisResult(Embedded):
    """What an analysis found: a summary and key/value rows."""

    description: str | None = None
    body: list[ResultRow] = Field(default_factory=list)


class AnalysisSnapshot(Embedded):
    """The analysis as embedded in an assistant message (for replay without a lookup)."""

    analysis_id: str
    title: str
    description: str | None = None
    category: str | None = None
    result: AnalysisResult = Field(default_factory=AnalysisResult)
    parameters: JsonObject = Field(default_factory=dict)
    mcp_calls: list[str] = Field(default_factory=list)
    generated_script: str | None = None
    execution_ms: int | None = None
    data_sources: list[str] = Field(default_factory=list)


class Analysis(TenantDocument):
    """A reusable analysis; its title and description are full-text searchable."""

    analysis_id: ClientId = Field(default_factory=new_id)
    user_id: ClientId | None = None
    thread_id: ClientId | None = None
    message_id: ClientId | None = None
    execution_id: ClientId | None = None
    question: str | None = None
    title: str
    description: str | None = None
    category: str | None = None
    result: AnalysisResult = Field(default_factory=AnalysisResult)
    parameters: JsonObject = Field(default_factory=dict)
    mcp_calls: list[str] = Field(default_factory=list)
    generated_script: str | None = None
    execution_ms: int | None = None
    data_sources: list[str] = Field(default_factory=list)
    version: int = 1
    is_template: bool = False
    similar_queries: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    usage_count: int = 0
    last_used_at_ms: int = 0
    last_used_at = ms_property("last_used_at_ms")
    metadata: JsonObject = Field(default_factory=dict)
    search_terms: list[str] = Field(default_factory=list)  # terms search mode only

    SEARCH_FIELDS: ClassVar[tuple[str, ...]] = ("title", "description")
    SEARCH_INDEXES: ClassVar[dict[str, list]] = {
        TEXT: [index("$text:title", "$text:description", name="title_description_text")],
        TERMS: [index("org_id", "search_terms", "-created_at_ms", name="org_terms_created")],
    }

    def snapshot(self) -> AnalysisSnapshot:
        """The embeddable copy of this analysis."""
        return AnalysisSnapshot(
            **self.model_dump(include=set(AnalysisSnapshot.model_fields), by_alias=False)
        )

    RESOURCE: ClassVar[str] = "analysis"
    RESOURCE_KEY: ClassVar[str] = "analysis_id"

    class Settings(StorageSettings):
        name = "analyses"
        indexes = [
            index("org_id", "analysis_id", unique=True, name="org_analysis_uq"),
            index("org_id", "user_id", "-created_at_ms", name="org_user_created"),
            index("org_id", "is_template", "-last_used_at_ms", name="org_template_used"),
            index("org_id", "tags", name="org_tags"),
        ]


class SavedAnalysis(TenantDocument):
    """A user's saved analysis template, with its usage."""

    saved_id: ClientId = Field(default_factory=new_id)
    user_id: ClientId
    analysis_id: ClientId
    name: str = Field(min_length=1, max_length=300)
    description: str | None = None
    usage_count: int = 0
    last_used_at_ms: int = 0
    last_used_at = ms_property("last_used_at_ms")
    is_template: bool = True
    template_variables: JsonObject = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    category: str | None = None

    RESOURCE: ClassVar[str] = "saved_analysis"
    RESOURCE_KEY: ClassVar[str] = "saved_id"

    class Settings(StorageSettings):
        name = "saved_analyses"
        indexes = [
            index("org_id", "saved_id", unique=True, name="org_saved_uq"),
            index("org_id", "user_id", "-created_at_ms", name="org_user_created"),
            index("org_id", "analysis_id", name="org_analysis"),
        ]


class AnalysisIn(ApiIn):
    """`POST /analyses` (and ingest)."""

    analysis_id: ClientId | None = None
    user_id: ClientId | None = None
    thread_id: ClientId | None = None
    message_id: ClientId | None = None
    execution_id: ClientId | None = None
    question: str | None = Field(default=None, max_length=10_000)
    title: str = Field(min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=10_000)
    category: str | None = Field(default=None, max_length=100)
    result: AnalysisResult = Field(default_factory=AnalysisResult)
    parameters: ClientJsonObject = Field(default_factory=dict)
    mcp_calls: list[str] = Field(default_factory=list, max_length=200)
    generated_script: str | None = Field(default=None, max_length=200_000)
    execution_ms: int | None = Field(default=None, ge=0)
    data_sources: list[str] = Field(default_factory=list, max_length=200)
    version: int = Field(default=1, ge=1)
    is_template: bool = False
    similar_queries: list[str] = Field(default_factory=list, max_length=50)
    tags: Tags = Field(default_factory=list)
    metadata: ClientJsonObject = Field(default_factory=dict)


class AnalysisOut(ApiOut):
    """An analysis as the API shows it."""

    analysis_id: str
    user_id: str | None
    thread_id: str | None
    message_id: str | None
    execution_id: str | None
    question: str | None
    title: str
    description: str | None
    category: str | None
    result: AnalysisResult
    parameters: dict[str, Any]
    mcp_calls: list[str]
    generated_script: str | None
    execution_ms: int | None
    data_sources: list[str]
    version: int
    is_template: bool
    similar_queries: list[str]
    tags: list[str]
    usage_count: int
    last_used_at: ApiDatetime | None
    created_at: ApiDatetime
    updated_at: ApiDatetime
    metadata: dict[str, Any]


ANALYSIS_PAGE_MAX = 1_000  # analyses a list page may hold


class AnalysisQuery(ApiQuery):
    """`GET /analyses` query string."""

    q: str | None = Field(
        default=None,
        max_length=500,
        description="Full-text search over title and description (every word must match). "
        "Where the server has text indexes, matches are ordered best first by text score and "
        "come in one page: `next_cursor` is null and a `cursor` is refused. Otherwise "
        "(terms search mode) they are newest first and paged like the list.",
    )
    tag: str | None = Field(default=None, max_length=64)
    user_id: ClientId | None = None
    reusable: bool | None = None
    limit: int = Field(default=20, ge=1, le=ANALYSIS_PAGE_MAX)
    cursor: str | None = Field(
        default=None,
        max_length=1024,
        description="`next_cursor` of the previous page (newest first).",
    )


class ReuseIn(ApiIn):
    """`POST /analyses/{id}/reuse`."""

    question: str | None = Field(default=None, max_length=10_000)
    parameters: ClientJsonObject = Field(default_factory=dict)


class ReuseOut(ApiOut):
    analysis: AnalysisOut
    parameters: dict[str, Any]


class SavedAnalysisIn(ApiIn):
    """`POST /saved-analyses`."""

    saved_id: ClientId | None = None
    user_id: ClientId
    analysis_id: ClientId
    name: str = Field(min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=5000)
    template_variables: ClientJsonObject = Field(default_factory=dict)
    tags: Tags | None = None
    category: str | None = Field(default=None, max_length=100)


class SavedAnalysisOut(ApiOut):
    saved_id: str
    user_id: str
    analysis_id: str
    name: str
    description: str | None
    usage_count: int
    last_used_at: ApiDatetime | None
    is_template: bool
    template_variables: dict[str, Any]
    tags: list[str]
    category: str | None
    created_at: ApiDatetime
    updated_at: ApiDatetime


class SavedListQuery(ApiQuery):
    user_id: ClientId | None = None
    limit: int = Field(default=50, ge=1, le=200)
