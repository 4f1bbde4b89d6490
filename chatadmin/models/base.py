"""The base every collection shares: a string `_id`, the tenant, and timestamps set in one place.

Rules from MONGO-COMPAT.md live here: string ids only (no ObjectId, UUID or `Link`), aware UTC
datetimes truncated to milliseconds with an integer `*_ms` twin for cursors, and no
`use_revision` (the embedded server breaks it).

A tenant document's `_id` is its org and its client id (`acme~t-42`), so that batch lookups by
client id go through the primary index: nx-27017 answers `$in` on a secondary index, and an
upsert filtered by one, by scanning the collection, a cost that grows with its size.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Self

from beanie import Document, Insert, Replace, before_event
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
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
    "doc_key",
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


KEY_SEPARATOR = "~"  # never in a client id (CLIENT_ID_RE), and safe in a URL path


def doc_key(org_id: str, key: str) -> str:
    """The `_id` of the tenant document of `org_id` whose client id is `key`."""
    return f"{org_id}{KEY_SEPARATOR}{key}"


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

    @model_validator(mode="after")
    def _keyed(self) -> Self:
        """A new document's `_id` is `doc_key(org_id, client id)` (a stored one keeps its own)."""
        if "id" not in self.model_fields_set and self.RESOURCE_KEY != "id":
            key = getattr(self, self.RESOURCE_KEY, None)
            if key:
                self.id = doc_key(self.org_id, key)
        return self

    @classmethod
    def keyed(cls, org_id: str, keys: Iterable[str]) -> dict[str, Any]:
        """The filter of the org's documents with these client ids, by `_id`."""
        return {"_id": {"$in": [doc_key(org_id, k) for k in sorted(set(keys))]}, "org_id": org_id}

    @classmethod
    def key_of(cls, org_id: str, key: str) -> dict[str, Any]:
        """The filter of the org's document with this client id, by `_id`."""
        return {"_id": doc_key(org_id, key), "org_id": org_id}


def rekeyed(model: type[TimestampedDocument], doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document of `model` with the `_id` its org and client id give it (documents
    written before ids were keyed have a random one)."""
    keyed = issubclass(model, TenantDocument) and model.RESOURCE_KEY != "id"
    key = doc.get(model.RESOURCE_KEY) if keyed else None
    if key and doc.get("org_id"):
        return {**doc, "_id": doc_key(doc["org_id"], key)}
    return doc
