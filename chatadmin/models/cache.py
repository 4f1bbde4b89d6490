"""`cache`: analysis results keyed by the sha256 of the canonical question and parameters."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from chatadmin.models.base import (
    ClientId,
    JsonObject,
    JsonValue,
    StorageSettings,
    TenantDocument,
    UtcDatetime,
    index,
    ms_property,
)
from chatadmin.models.jsonfield import ClientJsonObject, ClientJsonValue
from chatadmin.models.schema import ApiDatetime, ApiIn, ApiOut


class CacheEntry(TenantDocument):
    """A cached result; expires at `expires_at` (TTL index plus the sweeper)."""

    cache_key: str = Field(min_length=64, max_length=64)
    question: str
    parameters: JsonObject = Field(default_factory=dict)
    result: JsonValue = None
    analysis_id: str | None = None
    hit_count: int = 0
    last_used_at_ms: int = 0
    last_used_at = ms_property("last_used_at_ms")
    expires_at: UtcDatetime
    expires_at_ms: int

    RESOURCE: ClassVar[str] = "cache"
    RESOURCE_KEY: ClassVar[str] = "cache_key"

    class Settings(StorageSettings):
        name = "cache"
        indexes = [
            index("org_id", "cache_key", unique=True, name="org_cache_key_uq"),
            index("expires_at", ttl=0, name="expires_at_ttl"),
            index("expires_at_ms", name="expires_at_ms"),
        ]


class CachePut(ApiIn):
    """`PUT /cache`."""

    question: str = Field(min_length=1, max_length=10_000)
    parameters: ClientJsonObject = Field(default_factory=dict)
    result: ClientJsonValue = None
    ttl_seconds: int | None = Field(default=None, ge=1, le=365 * 24 * 3600)
    analysis_id: ClientId | None = None


class CacheLookup(ApiIn):
    """`POST /cache/lookup`."""

    question: str = Field(min_length=1, max_length=10_000)
    parameters: ClientJsonObject = Field(default_factory=dict)


class CacheStored(ApiOut):
    cache_key: str
    expires_at: ApiDatetime


class CacheHit(ApiOut):
    hit: bool
    result: Any = None
    cache_key: str | None = None
    hit_count: int | None = None
    expires_at: ApiDatetime | None = None
