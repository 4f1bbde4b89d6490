"""The base every collection shares: a string `_id`, the tenant, and timestamps set in one place.

Rules from MONGO-COMPAT.md live here: string ids only (no ObjectId, UUID or `Link`), aware UTC
datetimes truncated to milliseconds with an integer `*_ms` twin for cursors, and no
`use_revision` (the embedded server breaks it).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar

from beanie import Document, Insert, Replace, before_event
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pymongo import ASCENDING, DESCENDING, TEXT, IndexModel

from chatadmin import search
from chatadmin.clock import as_utc, from_ms, ms_datetime, now_ms, to_ms, utcnow
from chatadmin.models.jsonfield import STORAGE_ENCODERS, JsonObject, JsonValue, escape_keys

__all__ = [
    "ASC",
    "DESC",
    "STORAGE_ENCODERS",
    "TEXT",
    "ClientId",
    "Embedded",
    "IndexModel",
    "JsonObject",
    "JsonValue",
    "StorageSettings",
    "TenantDocument",
    "TimestampedDocument",
    "UtcDatetime",
    "index",
    "ms_property",
    "new_id",
]

ASC, DESC = ASCENDING, DESCENDING

# A client-visible id: printable, no leading '$', bounded, so it is always plain data in a query.
CLIENT_ID_RE = r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}$"
CLIENT_ID_PATTERN = re.compile(CLIENT_ID_RE)
ClientId = Annotated[str, StringConstraints(pattern=CLIENT_ID_RE)]
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


def index(*fields: str, name: str, unique: bool = False, ttl: int | None = None) -> IndexModel:
    """An index spec: `"field"` ascending, `"-field"` descending, `"$text:field"` full-text."""
    keys = []
    for f in fields:
        if f.startswith("$text:"):
            keys.append((f[6:], TEXT))
        elif f.startswith("-"):
            keys.append((f[1:], DESCENDING))
        else:
            keys.append((f, ASCENDING))
    options: dict = {"name": name}
    if unique:
        options["unique"] = True
    if ttl is not None:
        options["expireAfterSeconds"] = ttl
    return IndexModel(keys, **options)


def ms_property(field: str) -> property:
    """A read-only datetime view of an epoch-ms field (None while it is 0)."""
    return property(lambda self: ms_datetime(getattr(self, field)), doc=f"`{field}` as a datetime")


def new_id() -> str:
    """A new random string id (uuid4, hex)."""
    return uuid.uuid4().hex


class Embedded(BaseModel):
    """Base of embedded sub-documents: unknown keys are refused, not silently dropped."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StorageSettings:
    """Beanie settings every collection shares: the encoders of our stored types. Each
    Document's `class Settings(StorageSettings)` adds its name and indexes."""

    bson_encoders = STORAGE_ENCODERS


class TimestampedDocument(Document):
    """A document with a string `_id` and created/updated times kept by `before_event` hooks."""

    id: str = Field(default_factory=new_id, alias="_id")  # type: ignore[assignment]
    created_at: UtcDatetime = Field(default_factory=utcnow)
    created_at_ms: int = 0
    # Changes after insert, so it is kept as epoch ms only (see `clock.stamp`).
    updated_at_ms: int = 0

    @property
    def updated_at(self) -> datetime:
        return from_ms(self.updated_at_ms or self.created_at_ms or to_ms(self.created_at))

    @before_event(Insert)
    def _stamp_insert(self) -> None:
        self.stamped()

    @before_event(Replace)
    def _stamp_replace(self) -> None:
        self.updated_at_ms = now_ms()
        if not self.created_at_ms:
            self.created_at_ms = to_ms(self.created_at)
        self.index_search_terms()

    def stamped(self) -> TimestampedDocument:
        """Fill the derived fields (`*_ms` twins, search terms); for documents written in bulk,
        where hooks do not run."""
        self.created_at_ms = to_ms(self.created_at)
        if not self.updated_at_ms:
            self.updated_at_ms = self.created_at_ms
        self.index_search_terms()
        return self

    # Full-text searchable fields; a model that has some also has `search_terms`.
    SEARCH_FIELDS: ClassVar[tuple[str, ...]] = ()
    SEARCH_INDEXES: ClassVar[dict[str, list[IndexModel]]] = {}

    def index_search_terms(self) -> None:
        """Keep `search_terms` in step with the searchable fields (terms search mode only)."""
        if self.SEARCH_FIELDS:
            texts = [getattr(self, name) for name in self.SEARCH_FIELDS]
            self.search_terms = (
                search.document_terms(*texts) if search.mode() == search.TERMS else []
            )

    def storage_fields(self, names: set[str] | None = None) -> dict[str, Any]:
        """Fields as they are stored, for raw writes: the dump with every key escaped.

        Only free-form client objects can hold keys with `$`, `.` or NUL (field names never
        do), so escaping the whole dump equals escaping those objects, and is much cheaper
        than Beanie's encoder.
        """
        data = self.model_dump(by_alias=True, include=names)
        return escape_keys(data)

    # What audit entries call this kind of document, and the field that names one of them.
    RESOURCE: ClassVar[str] = "document"
    RESOURCE_KEY: ClassVar[str] = "id"

    class Settings(StorageSettings):
        pass


class TenantDocument(TimestampedDocument):
    """A document that belongs to one org; every unique index leads with `org_id`."""

    org_id: ClientId
    # sha256 of the last ingested event for this document: a replay with the same data is a no-op.
    ingest_hash: str | None = None
