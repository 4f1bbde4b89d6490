"""Declared indexes versus the ones a server has: creation and drift reports.

Indexes are compared by their keys and options (unique, TTL), never by name or direction:
nx-27017 renames indexes and reads `-1` back as `1` (MONGO-COMPAT.md). It also does not list
text indexes at all, so on that server declared text indexes are reported as unverifiable
rather than missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from beanie import Document
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from chatadmin import search
from chatadmin.db import ServerInfo

Signature = tuple[tuple[tuple[str, str], ...], bool, int | None]


def signature_of_spec(spec: dict) -> Signature:
    """A comparable signature of an index document (from IndexModel or listIndexes)."""
    key = spec["key"]
    items = list(key.items()) if hasattr(key, "items") else list(key)
    if any(name == "_fts" for name, _ in items):
        fields = tuple((name, "text") for name in sorted(spec.get("weights", {})))
    else:
        fields = tuple((name, "text" if kind == "text" else "key") for name, kind in items)
    ttl = spec.get("expireAfterSeconds")
    return fields, bool(spec.get("unique", False)), int(ttl) if ttl is not None else None


def describe(sig: Signature) -> str:
    fields, unique, ttl = sig
    text = ", ".join(f"{n} (text)" if k == "text" else n for n, k in fields)
    extra = (" unique" if unique else "") + (f" ttl={ttl}s" if ttl is not None else "")
    return f"[{text}]{extra}"


def declared_indexes(model: type[Document], mode: str | None = None) -> list[IndexModel]:
    """The indexes `model` declares for search mode `mode` (default: the open database's)."""
    searched = getattr(model, "SEARCH_INDEXES", {}).get(mode or search.mode(), [])
    return [*getattr(model.Settings, "indexes", []), *searched]


@dataclass
class Drift:
    """The difference between declared and present indexes of one collection."""

    collection: str
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unverifiable: list[str] = field(default_factory=list)
    collection_missing: bool = False

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.collection_missing)


async def index_drift(db: AsyncDatabase, model: type[Document], info: ServerInfo) -> Drift:
    """Compare a model's declared indexes with the collection's."""
    name = model.Settings.name
    drift = Drift(name)
    present = set()
    if name not in await db.list_collection_names():
        drift.collection_missing = True  # listing its indexes would create it on nx-27017
    else:
        present = {
            signature_of_spec(spec)
            for spec in (await db[name].index_information()).values()
            if list(spec["key"]) != [("_id", 1)]
        }
    declared = {signature_of_spec(ix.document) for ix in declared_indexes(model)}
    for sig in sorted(declared - present):
        if _is_text(sig) and not info.lists_text_indexes:
            drift.unverifiable.append(describe(sig))
        else:
            drift.missing.append(describe(sig))
    drift.extra = [describe(sig) for sig in sorted(present - declared)]
    return drift


async def ensure_indexes(db: AsyncDatabase, model: type[Document]) -> list[str]:
    """Create the collection and the declared indexes it lacks; returns what was created.

    A text index that the server does not list (nx-27017) is created again each time; where it
    exists on a collection that holds documents, nx-27017 refuses that with "constraint failed"
    (MongoDB answers such a repeat with a no-op), which means it is there.
    """
    name = model.Settings.name
    changes = []
    if name not in await db.list_collection_names():
        await db.create_collection(name)
        changes.append(f"created collection {name}")
    present = {signature_of_spec(s) for s in (await db[name].index_information()).values()}
    for ix in declared_indexes(model):
        sig = signature_of_spec(ix.document)
        if sig in present:
            continue
        try:
            await db[name].create_indexes([ix])
        except OperationFailure as exc:
            if _is_text(sig) and "constraint failed" in str(exc):
                continue
            raise
        changes.append(f"created index {name}.{ix.document['name']} {describe(sig)}")
    return changes


def _is_text(sig: Signature) -> bool:
    return any(kind == "text" for _, kind in sig[0])


def searchable_models() -> list[type[Document]]:
    from chatadmin.models import DOCUMENT_MODELS

    return [m for m in DOCUMENT_MODELS if getattr(m, "SEARCH_FIELDS", ())]


async def build_search(db: AsyncDatabase) -> list[str]:
    """Make full-text search work in the open database's mode: create the mode's indexes and,
    in terms mode, (re)compute every searchable document's terms. Idempotent."""
    changes = [f"search mode: {search.describe()}"]
    for model in searchable_models():
        changes += await ensure_indexes(db, model)
        if search.mode() == search.TERMS:
            name = model.Settings.name
            count = await search.backfill(db[name], model.SEARCH_FIELDS)
            changes.append(f"search terms of {count} {name} documents computed")
    return changes
