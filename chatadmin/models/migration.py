"""`migrations`: which schema migrations ran, when, how long, and what they changed."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from chatadmin.models.base import StorageSettings, TimestampedDocument, UtcDatetime, index


class MigrationRecord(TimestampedDocument):
    """One applied (or failed) migration."""

    version: str
    name: str
    applied_at: UtcDatetime
    status: Literal["completed", "failed", "rolled_back"]
    execution_ms: int
    changes: list[str] = Field(default_factory=list)
    error: str | None = None

    RESOURCE: ClassVar[str] = "migration"
    RESOURCE_KEY: ClassVar[str] = "name"

    class Settings(StorageSettings):
        name = "migrations"
        indexes = [index("version", unique=True, name="version_uq")]
