"""`DocumentView`: the one base of every admin list, over a Beanie Document with plain `find()`.

starlette-admin's Beanie `ModelView` queries with `fetch_links=True` (an aggregate that breaks
on nx-27017), counts exactly on every page and expects ObjectId keys, so this view does its own
reads: plain finds, keyset-friendly indexed sorts, an estimated count when unfiltered and a
capped count ("1,000+") when filtered, org scoping and masking applied to the data itself, and
an audit entry with before/after for every create, edit and delete.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from typing import Any, ClassVar, get_args, get_origin

from beanie import Document
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette_admin import BaseModelView
from starlette_admin.contrib.beanie.converters import BeanieModelConverter
from starlette_admin.contrib.beanie.filters import (
    BeanieFilterRegistry,
    ContainsFilter,
    EndsWithFilter,
    StartsWithFilter,
    build_filter_query,
)
from starlette_admin.converters import converts
from starlette_admin.exceptions import FormValidationError
from starlette_admin.fields import BaseField, DateTimeField, EnumField, JSONField, StringField
from starlette_admin.filters import FilterApplyContext, FilterGroup, filters
from starlette_admin.filters.generic import EqualFilter as BaseEqualFilter
from starlette_admin.helpers import pydantic_error_to_form_validation_errors

from chatadmin import search
from chatadmin.admin import roles
from chatadmin.admin.auth import audit_admin
from chatadmin.clock import to_ms

COUNT_CAP = 1000
# Datetime fields whose filters run on their integer epoch-ms twin (exact on every server).
MS_TWINS = {"created_at": "created_at_ms", "period_start": "period_start_ms"}


class CappedCount(int):
    """A count that stopped at the cap: shows as "1,000+"."""

    def __str__(self) -> str:
        return f"{int(self) - 1:,}+"


class ExactFilter(BaseEqualFilter):
    """String equality that can use an index (no case-folding regex)."""

    def apply(self, ctx: FilterApplyContext) -> dict:
        return {ctx.field_name: str(ctx.value)}


class FilterRegistry(BeanieFilterRegistry):
    """Only filters that answer the same on MongoDB and nx-27017 (no `re.compile`, no nulls)."""

    @filters(StringField)
    def string_filters(self, field: BaseField) -> list:
        return [ExactFilter, ContainsFilter, StartsWithFilter, EndsWithFilter]


class Converter(BeanieModelConverter):
    """Converts our models: `Literal` to choices, `X | None` and `Annotated` unwrapped."""

    def convert(self, *args: Any, **kwargs: Any) -> BaseField:
        kind = kwargs.get("type")
        while get_origin(kind) is typing.Annotated:
            kind = get_args(kind)[0]
        kwargs["type"] = kind
        if kind is Any:
            return JSONField(**self._standard_type_common(**kwargs))
        return super().convert(*args, **kwargs)

    @converts(typing.Literal)
    def conv_literal(self, *args: Any, **kwargs: Any) -> BaseField:
        choices = [(v, str(v)) for v in get_args(kwargs["type"])]
        return EnumField(
            **self._standard_type_common(**kwargs),
            choices=choices,
            multiple=kwargs.get("multiple", False),
        )

    @converts(typing.Union)
    def conv_union(self, *args: Any, **kwargs: Any) -> BaseField:
        options = [a for a in get_args(kwargs["type"]) if a is not type(None)]
        if len(options) == 1:
            kwargs.update(type=options[0], required=False)
            return self.convert(*args, **kwargs)
        return JSONField(**self._standard_type_common(**kwargs))


def _ms_rewrite(query: Any) -> Any:
    """Move datetime conditions onto their `*_ms` twins."""
    if isinstance(query, list):
        return [_ms_rewrite(q) for q in query]
    if not isinstance(query, dict):
        return query
    out = {}
    for key, value in query.items():
        if key in MS_TWINS:
            key = MS_TWINS[key]
            if isinstance(value, dict):
                value = {op: to_ms(v) if hasattr(v, "tzinfo") else v for op, v in value.items()}
            elif hasattr(value, "tzinfo"):
                value = to_ms(value)
            out[key] = value
        else:
            out[key] = _ms_rewrite(value)
    return out


def merge_conditions(parts: list[dict]) -> dict:
    """AND the parts as one flat query where their keys differ, `$and` only for the rest.

    MongoDB answers both forms alike; nx-27017 evaluates a top-level `$and` in Python (ten
    times slower), and `$text` must sit at the top level anyway.
    """
    flat: list[dict] = []
    for part in parts:
        flat.extend(part["$and"] if set(part) == {"$and"} else [part])
    merged: dict = {}
    rest: list[dict] = []
    for part in flat:
        if set(part) & set(merged):
            rest.append(part)
        else:
            merged.update(part)
    if rest:
        merged["$and"] = rest
    return merged


class DocumentView(BaseModelView):
    """A list/detail/create/edit/delete view over one Document, for our roles."""

    document: ClassVar[type[Document]]
    field_names: ClassVar[Sequence[Any]] = ()
    pk_attr = "id"
    page_size = 25
    page_size_options: ClassVar = [25, 50, 100]
    fields_default_sort: ClassVar = [("created_at_ms", True)]
    importers: ClassVar = []  # import would bypass can_create/can_edit
    exporters: ClassVar = ["csv", "json"]
    search_fields: ClassVar[Sequence[str]] = ()  # string fields matched by the search box
    # Fields offered as filters when the view shows them (starlette-admin filters only
    # "searchable" fields; the search box itself uses `search_fields` alone).
    filter_fields: ClassVar[Sequence[str]] = (
        "org_id",
        "user_id",
        "thread_id",
        "role",
        "status",
        "tags",
        "created_at",
        "query_type",
        "is_template",
        "category",
        "revoked",
        "actor_type",
        "action",
        "resource_type",
        "resource_id",
        "success",
        "scope_type",
        "execution_status",
        "period_key",
    )
    writable: ClassVar[bool] = True  # admins may create/edit/delete raw data here
    creatable: ClassVar[bool] = False
    tenant_field: ClassVar[str | None] = "org_id"
    count_cap: ClassVar[int] = COUNT_CAP
    text_search: ClassVar[bool] = False  # search with the text index instead of a regex

    def __init__(self) -> None:
        self.key = self.key or self.document.Settings.name.replace("_", "-")
        self.display_name = self.display_name or self.label
        self.menu_label = self.menu_label or self.display_name
        names = list(self.field_names) or list(self.document.model_fields)
        self.fields = Converter().convert_fields_list(
            fields=[self._time_field(n) for n in names], model=self.document
        )
        if self.searchable_fields is None:
            shown = {n if isinstance(n, str) else n.name for n in names}
            filterable = [n for n in self.filter_fields if n in shown]
            self.searchable_fields = list(dict.fromkeys([*self.search_fields, *filterable]))
        super().__init__()

    def _time_field(self, name: Any) -> Any:
        """A time kept as epoch ms and read through a property: a read-only datetime column."""
        if isinstance(name, str) and name not in self.document.model_fields:
            if isinstance(getattr(self.document, name, None), property):
                return DateTimeField(
                    name,
                    read_only=True,
                    exclude_from_create=True,
                    exclude_from_edit=True,
                    getter=lambda request, obj, name=name: getattr(obj, name),
                )
        return name

    @property
    def label(self) -> str:
        return self.document.Settings.name.replace("_", " ").title()

    # -- permissions -------------------------------------------------------------------------

    def is_accessible(self, request: Request) -> bool:
        return roles.staff(request) is not None

    def can_view_detail(self, request: Request) -> bool:
        return True

    def can_create(self, request: Request) -> bool:
        return self.writable and self.creatable and roles.is_admin(request)

    def can_edit(self, request: Request) -> bool:
        return self.writable and roles.is_admin(request)

    def can_delete(self, request: Request) -> bool:
        return self.writable and roles.is_admin(request)

    def can_import(self, request: Request) -> bool:
        return False

    def can_export(self, request: Request) -> bool:
        return True

    async def is_action_allowed(self, request: Request, name: str) -> bool:
        if name in ("delete", "export"):
            return await super().is_action_allowed(request, name)
        return self.can_edit(request)

    async def is_row_action_allowed(self, request: Request, name: str) -> bool:
        if name in ("view", "edit", "delete"):
            return await super().is_row_action_allowed(request, name)
        return self.can_edit(request)

    async def handle_action(self, request: Request, selection: Any, name: str) -> Any:
        """Refuse an action the role may not run with a 403 (starlette-admin answers 400)."""
        if not await self.is_action_allowed(request, name):
            return JSONResponse({"msg": "Forbidden"}, status_code=403)
        return await super().handle_action(request, selection, name)

    async def handle_row_action(self, request: Request, pk: Any, name: str) -> Any:
        if not await self.is_row_action_allowed(request, name):
            return JSONResponse({"msg": "Forbidden"}, status_code=403)
        return await super().handle_row_action(request, pk, name)

    def get_filter_registry(self) -> FilterRegistry:
        return FilterRegistry()

    # -- reads ---------------------------------------------------------------------------------

    def scope(self, request: Request) -> dict:
        return roles.scope_query(request, self.tenant_field) if self.tenant_field else {}

    async def build_query(
        self, request: Request, q: str | None, filters: FilterGroup | None
    ) -> dict:
        parts = [self.scope(request)]
        if q and q.strip():
            parts.append(self.search_query(request, q.strip()[:200]))
        if filters is not None and not filters.is_empty():
            fields = {f.name: f for f in self.get_fields_list(request, include_nested=True)}
            built = build_filter_query(filters, fields, self.get_filter_registry(), self, request)
            if built:
                parts.append(_ms_rewrite(built))
        return merge_conditions([p for p in parts if p])

    def search_query(self, request: Request, q: str) -> dict:
        """Full text (every word must match), or a case-insensitive escaped match over the
        view's search fields (masked fields excluded for viewers)."""
        if self.text_search:
            return search.condition(q) or {"_id": {"$in": []}}
        names = [
            n
            for n in self.search_fields
            if not (roles.is_masked(request) and n in roles.MASKED_FIELDS)
        ]
        pattern = {"$regex": re.escape(q), "$options": "i"}
        if not names:
            return {"_id": {"$in": []}}
        return {"$or": [{name: pattern} for name in names]}

    def sort_spec(self, sorts: Sequence[tuple[str, str]] | None) -> list[tuple[str, int]]:
        spec = []
        for name, direction in sorts or []:
            name = {"id": "_id", **MS_TWINS}.get(name, name)
            spec.append((name, -1 if direction == "desc" else 1))
        if not any(name == "_id" for name, _ in spec):
            spec.append(("_id", spec[-1][1] if spec else -1))  # a total order for paging
        return spec

    def present(self, request: Request, doc: Document | None) -> Document | None:
        """The document as this user may see it (personal data masked for viewers)."""
        if doc is None or not roles.is_masked(request):
            return doc
        masked = roles.mask_document(doc.model_dump(by_alias=False))
        return type(doc).model_construct(**masked)

    async def find_all(
        self,
        request: Request,
        skip: int = 0,
        limit: int = 100,
        q: str | None = None,
        sorts: Sequence[tuple[str, str]] | None = None,
        filters: FilterGroup | None = None,
    ) -> Sequence[Any]:
        query = await self.build_query(request, q, filters)
        cursor = self.document.find(query).sort(self.sort_spec(sorts)).skip(max(0, skip))
        if limit > 0:
            cursor = cursor.limit(limit)
        return [self.present(request, d) for d in await cursor.to_list()]

    async def count(
        self, request: Request, q: str | None = None, filters: FilterGroup | None = None
    ) -> int:
        query = await self.build_query(request, q, filters)
        coll = self.document.get_pymongo_collection()
        if not query:
            return await coll.estimated_document_count()
        found = await coll.find(query, {"_id": 1}).limit(self.count_cap + 1).to_list()
        return CappedCount(len(found)) if len(found) > self.count_cap else len(found)

    async def find_by_pk(self, request: Request, pk: Any) -> Any:
        doc = await self.document.find_one({"_id": str(pk), **self.scope(request)})
        return self.present(request, doc)

    async def find_by_pks(self, request: Request, pks: list[Any]) -> Sequence[Any]:
        found = await self.document.find(
            {"_id": {"$in": [str(p) for p in pks]}, **self.scope(request)}
        ).to_list()
        return [self.present(request, d) for d in found]

    async def get_pk_value(self, request: Request, obj: Any) -> Any:
        return str(obj.id)

    async def get_serialized_pk_value(self, request: Request, obj: Any) -> Any:
        return str(obj.id)

    async def serialize_field_value(self, value: Any, field: BaseField, request: Request) -> Any:
        if isinstance(field, JSONField):
            return _jsonable(value)
        return await super().serialize_field_value(value, field, request)

    # -- writes (admins only, checked again here: defence in depth) ------------------------

    def _require_admin(self, request: Request) -> None:
        if not (self.writable and roles.is_admin(request)):
            raise FormValidationError({"_": "You are not allowed to change this data."})

    async def create(self, request: Request, data: dict) -> Any:
        self._require_admin(request)
        if self.tenant_field and roles.org_scope(request):
            data[self.tenant_field] = roles.org_scope(request)
        try:
            doc = self.document(**{k: v for k, v in data.items() if v is not None})
        except ValidationError as exc:
            raise pydantic_error_to_form_validation_errors(exc) from exc
        await self._emit_before_create(request, data, doc)
        await doc.insert()
        await self._audit(request, "admin_create", doc, None, _public(doc))
        await self._emit_after_create(request, doc)
        return doc

    async def edit(self, request: Request, pk: Any, data: dict) -> Any:
        self._require_admin(request)
        doc = await self.document.find_one({"_id": str(pk), **self.scope(request)})
        if doc is None:
            raise FormValidationError({"_": "This record no longer exists."})
        before = _public(doc)
        changes = {
            k: v
            for k, v in data.items()
            if k in self.document.model_fields and k != "id" and not _blank_form_value(doc, k, v)
        }
        if self.tenant_field and roles.org_scope(request):
            changes.pop(self.tenant_field, None)
        try:
            updated = self.document.model_validate({**doc.model_dump(by_alias=True), **changes})
        except ValidationError as exc:
            raise pydantic_error_to_form_validation_errors(exc) from exc
        await self._emit_before_edit(request, data, updated, pk=pk, old_data=before)
        await updated.replace()  # whole-document write: datetimes stay dates on every server
        await self._audit(request, "admin_edit", updated, before, _public(updated))
        await self._emit_after_edit(request, updated, pk=pk, old_data=before)
        return updated

    async def delete(self, request: Request, pks: list[Any]) -> int | None:
        self._require_admin(request)
        count = 0
        for pk in pks:
            doc = await self.document.find_one({"_id": str(pk), **self.scope(request)})
            if doc is None:
                continue
            await self._emit_before_delete(request, pk, doc)
            await doc.delete()
            await self._audit(request, "admin_delete", doc, _public(doc), None)
            await self._emit_after_delete(request, pk, doc)
            count += 1
        return count

    async def _audit(self, request: Request, action: str, doc: Any, before, after) -> None:
        user = roles.staff(request)
        org = getattr(doc, "org_id", None) or (user.org_id if user else None)
        await audit_admin(
            request,
            action,
            actor=user.username if user else "?",
            org_id=org,
            resource_type=self.document.Settings.name,
            resource_id=str(doc.id),
            before=before,
            after=after,
        )


def _blank_form_value(doc: Any, name: str, value: Any) -> bool:
    """A form value that only stands for "nothing entered": keep what is stored.

    starlette-admin renders an empty JSON object as `null` and an unset text as "".
    """
    current = getattr(doc, name, None)
    if value is None and isinstance(current, dict | list):
        return True
    return value == "" and current is None


def _jsonable(value: Any) -> Any:
    """Pydantic models inside JSON fields as plain JSON (not their Python repr)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _public(doc: Any) -> dict:
    """A JSON form of a document for audit before/after (no secrets)."""
    data = doc.model_dump(mode="json", exclude={"password_hash", "key_hash", "revision_id"})
    return data
