"""`chat_messages`: one message per document, ordered by a per-thread `seq` (0, 1, 2, ...)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from chatadmin.models.analysis import AnalysisSnapshot
from chatadmin.models.base import (
    ClientId,
    Embedded,
    JsonObject,
    StorageSettings,
    TenantDocument,
    index,
    ms_property,
    new_id,
)
from chatadmin.models.blocks import Block, coerce_content
from chatadmin.models.jsonfield import ClientJsonObject
from chatadmin.models.schema import ApiDatetime, ApiIn, ApiOut
from chatadmin.search import TERMS, TEXT

Role = Literal["user", "assistant", "system", "tool"]
MessageStatus = Literal["sending", "sent", "error", "retrying"]
QueryType = Literal["complete", "contextual", "comparative", "parameter", "other"]


class QuestionContext(Embedded):
    """How a user question was understood."""

    original_question: str
    expanded_question: str | None = None
    expansion_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    query_type: QueryType | None = None


class AiMetadata(Embedded):
    """How an assistant message was produced."""

    model: str | None = None
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)
    response_ms: int | None = Field(default=None, ge=0)
    temperature: float | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    sources: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _total_from_parts(self) -> AiMetadata:
        """A total left out (0) is the input's and the output's, so every page and rollup shows
        the same figure whoever wrote the message."""
        if not self.total_tokens:
            self.total_tokens = self.input_tokens + self.output_tokens
        return self

    def tokens(self) -> int:
        return self.total_tokens


class ErrorDetails(Embedded):
    """Why a message failed."""

    code: str | None = None
    message: str | None = None
    retry_count: int = 0


class Feedback(Embedded):
    """A user's verdict on a message."""

    is_helpful: bool | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    comment: str | None = Field(default=None, max_length=5000)
    submitted_at_ms: int = 0
    submitted_at = ms_property("submitted_at_ms")


class Reference(Embedded):
    """Something a message referred to (an employee, a report, a document)."""

    kind: str
    ref_id: str
    label: str | None = None
    relevance: str | None = None


class Message(TenantDocument):
    """One message of a thread."""

    message_id: ClientId = Field(default_factory=new_id)
    thread_id: ClientId
    user_id: ClientId | None = None
    seq: int = Field(ge=0)
    role: Role
    content: list[Block] = Field(default_factory=list)
    text: str = ""
    question_context: QuestionContext | None = None
    query_type: QueryType | None = None
    analysis_id: ClientId | None = None
    analysis: AnalysisSnapshot | None = None
    ai_metadata: AiMetadata | None = None
    execution_id: ClientId | None = None
    execution_status: str | None = None
    status: MessageStatus = "sent"
    error: ErrorDetails | None = None
    has_error: bool = False
    feedback: Feedback | None = None
    references: list[Reference] = Field(default_factory=list)
    deleted: bool = False
    deleted_at_ms: int = 0
    metadata: JsonObject = Field(default_factory=dict)
    search_terms: list[str] = Field(default_factory=list)  # terms search mode only

    SEARCH_FIELDS: ClassVar[tuple[str, ...]] = ("text",)
    SEARCH_INDEXES: ClassVar[dict[str, list]] = {
        TEXT: [index("$text:text", name="text_text")],
        TERMS: [
            index("org_id", "search_terms", "-created_at_ms", name="org_terms_created"),
            index("search_terms", "-created_at_ms", name="terms_created"),  # cross-org lists
        ],
    }

    # Optional fields a new message stores only when they hold something. A server reads a
    # document in time that grows with its values, and a plain turn has 12 null or empty ones:
    # nx-27017 hands sparse messages to the export 1.41x as fast (bench/doc_shape.py). Every
    # read fills them in from the defaults; no query asks for a null or a missing field.
    SPARSE_FIELDS: ClassVar[tuple[str, ...]] = (
        "question_context", "query_type", "analysis_id", "analysis", "ai_metadata",
        "execution_id", "execution_status", "error", "feedback", "references", "metadata",
        "search_terms",
    )  # fmt: skip

    @field_validator("content", mode="before")
    @classmethod
    def _plain_string_is_text(cls, value):
        return coerce_content(value)

    def storage_fields(self, names: set[str] | None = None) -> dict[str, Any]:
        """As stored; a whole message (an insert) without its empty optional fields. (An
        update `$set`s what it names, a null included: it may clear a field.)"""
        data = super().storage_fields(names)
        if names is None:
            for name in self.SPARSE_FIELDS:
                if _empty(data.get(name)):
                    data.pop(name, None)
            if "ai_metadata" in data:
                data["ai_metadata"] = {
                    k: v for k, v in data["ai_metadata"].items() if not _empty(v)
                }
        return data

    RESOURCE: ClassVar[str] = "message"
    RESOURCE_KEY: ClassVar[str] = "message_id"

    class Settings(StorageSettings):
        name = "chat_messages"
        indexes = [
            index("org_id", "message_id", unique=True, name="org_message_uq"),
            index("org_id", "thread_id", "seq", unique=True, name="org_thread_seq_uq"),
            index("org_id", "user_id", "role", "-created_at_ms", name="org_user_role_created"),
            index("org_id", "role", "-created_at_ms", name="org_role_created"),
            index("org_id", "-created_at_ms", name="org_created"),
            index("org_id", "analysis_id", name="org_analysis"),
            # Cross-org admin lists (an admin not bound to an org sends no org_id), and batch id
            # lookups: nx-27017 reads through single-field indexes only.
            index("-created_at_ms", name="created"),
            index("thread_id", name="thread"),
            index("message_id", name="message"),
        ]


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


class MessageIn(ApiIn):
    """`POST /threads/{id}/messages` (and ingest): `content` may be a plain string."""

    message_id: ClientId | None = None
    user_id: ClientId | None = None
    role: Role
    content: str | Annotated[list[Block], Field(max_length=500)] = ""
    question_context: QuestionContext | None = None
    analysis_id: ClientId | None = None
    analysis: AnalysisSnapshot | None = None
    ai_metadata: AiMetadata | None = None
    execution_id: ClientId | None = None
    execution_status: str | None = Field(default=None, max_length=50)
    status: MessageStatus = "sent"
    error: ErrorDetails | None = None
    references: list[Reference] = Field(default_factory=list, max_length=100)
    metadata: ClientJsonObject = Field(default_factory=dict)
    created_at: ApiDatetime | None = None


class FeedbackIn(ApiIn):
    """`POST /messages/{id}/feedback`: at least one of the three."""

    is_helpful: bool | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    comment: str | None = Field(default=None, max_length=5000)

    @model_validator(mode="after")
    def _something(self) -> FeedbackIn:
        if self.is_helpful is None and self.rating is None and not self.comment:
            raise ValueError("feedback needs is_helpful, rating or comment")
        return self


class SpooledMessageOut(ApiOut):
    """`202` of an append while MongoDB is unreachable: kept in the durable spool; its seq
    is assigned when it is applied."""

    spooled: bool = True
    thread_id: str
    message_id: str


class MessageOut(ApiOut):
    """A message as the API shows it."""

    message_id: str
    thread_id: str
    user_id: str | None
    seq: int
    role: str
    content: list[Block]
    text: str
    question_context: QuestionContext | None
    analysis_id: str | None
    analysis: AnalysisSnapshot | None
    ai_metadata: AiMetadata | None
    execution_id: str | None
    execution_status: str | None
    status: str
    feedback: FeedbackOut | None
    created_at: ApiDatetime
    updated_at: ApiDatetime
    metadata: dict[str, Any]


class FeedbackOut(ApiOut):
    is_helpful: bool | None
    rating: int | None
    comment: str | None
    submitted_at: ApiDatetime | None


MessageOut.model_rebuild()
