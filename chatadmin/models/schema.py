"""Bases of the API schemas (`ThreadIn`, `ThreadOut`, ...) that live beside their Documents.

Request schemas are strict (no silent type coercion) and refuse unknown fields; datetimes in
responses are ISO 8601 with offset and millisecond precision.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)

from chatadmin.clock import as_utc


def iso_ms(value: datetime) -> str:
    """ISO 8601 with offset and millisecond precision."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


ApiDatetime = Annotated[
    datetime,
    AfterValidator(as_utc),
    PlainSerializer(iso_ms, return_type=str, when_used="json"),
]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Tags = Annotated[list[Tag], Field(max_length=50)]
ShortText = Annotated[str, StringConstraints(max_length=500)]
LongText = Annotated[str, StringConstraints(max_length=20_000)]


class ApiIn(BaseModel):
    """A request body: strict types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ApiOut(BaseModel):
    """A response body."""

    model_config = ConfigDict(from_attributes=True)


class ApiQuery(BaseModel):
    """A query string: values arrive as text and are converted."""

    model_config = ConfigDict(extra="forbid")
