"""`analyses` (reusable analyses) and `saved_analyses` (a user's saved templates)."""

from __future__ import annotations

from pydantic import Field

from chatadmin.models.base import (
    STORAGE_ENCODERS,
    ClientId,
    Embedded,
    JsonObject,
    JsonValue,
    TenantDocument,
    index,
    ms_property,
    new_id,
)


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

    def snapshot(self) -> AnalysisSnapshot:
        """The embeddable copy of this analysis."""
        return AnalysisSnapshot(
            **self.model_dump(include=set(AnalysisSnapshot.model_fields), by_alias=False)
        )

    class Settings:
        name = "analyses"
        bson_encoders = STORAGE_ENCODERS
        indexes = [
            index("org_id", "analysis_id", unique=True, name="org_analysis_uq"),
            index("org_id", "user_id", "-created_at_ms", name="org_user_created"),
            index("org_id", "is_template", "-last_used_at_ms", name="org_template_used"),
            index("org_id", "tags", name="org_tags"),
            index("$text:title", "$text:description", name="title_description_text"),
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

    class Settings:
        name = "saved_analyses"
        bson_encoders = STORAGE_ENCODERS
        indexes = [
            index("org_id", "saved_id", unique=True, name="org_saved_uq"),
            index("org_id", "user_id", "-created_at_ms", name="org_user_created"),
            index("org_id", "analysis_id", name="org_analysis"),
        ]
