"""`cache`: analysis results keyed by the sha256 of the canonical question and parameters."""

from __future__ import annotations

from pydantic import Field

from chatadmin.models.base import (
    STORAGE_ENCODERS,
    JsonObject,
    JsonValue,
    TenantDocument,
    UtcDatetime,
    index,
    ms_property,
)


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

    class Settings:
        name = "cache"
        bson_encoders = STORAGE_ENCODERS
        indexes = [
            index("org_id", "cache_key", unique=True, name="org_cache_key_uq"),
            index("expires_at", ttl=0, name="expires_at_ttl"),
            index("expires_at_ms", name="expires_at_ms"),
        ]
