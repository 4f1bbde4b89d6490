"""`DocumentView`: the one base of every admin list, over a Beanie Document with plain `find()`.

starlette-admin's Beanie `ModelView` queries with `fetch_links=True` (an aggregate that breaks
on nx-27017), counts exactly on every page and expects ObjectId keys, so this view does its own
reads: plain finds, keyset-friendly indexed sorts, an estimated count when unfiltered and a
capped count ("1,000+") when filtered, org scoping and masking applied to the data itself, and
an audit entry with before/after for every create, edit and delete.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from beanie import Document
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette_admin import BaseModelView, row_action
from starlette_admin.contrib.beanie.filters import build_filter_query
from starlette_admin.exceptions import ActionFailed, FormValidationError
from starlette_admin.fields import BaseField, DateTimeField, JSONField, ListField
from starlette_admin.filters import FilterGroup
from starlette_admin.flash import flash
from starlette_admin.helpers import pydantic_error_to_form_validation_errors, safe_redirect_url

from chatadmin import search
from chatadmin.admin import exports, roles
from chatadmin.admin.auth import audit_admin
from chatadmin.admin.converters import Converter, FilterRegistry
from chatadmin.admin.estimates import estimated_count
from chatadmin.admin.queries import MS_TWINS, mentions, merge_conditions, ms_rewrite, rule_fields
from chatadmin.exceptions import ChatAdminError
from chatadmin.services import audit

COUNT_CAP = 1000
MAX_SKIP = 2**31 - 1
# Row actions every staff member may run (they only navigate); the others need an admin.
OPEN_ROW_ACTIONS = frozenset({"conversation", "conversations"})


class CappedCount(int):
    """A count that stopped at the cap: shows as "1,000+"."""

    def __str__(self) -> str:
        return f"{int(self) - 1:,}+"


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
    # Fields offered as filters (each view names its own; starlette-admin filters only
    # "searchable" fields, while the search box uses `search_fields` alone).
    filter_fields: ClassVar[Sequence[str]] = ("org_id", "created_at")
    # Rows every reader hides (soft-deleted ones) unless a filter asks for them by this field.
    hidden: ClassVar[dict] = {}
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
        if name in OPEN_ROW_ACTIONS:
            return True
        if name in ("view", "edit", "delete"):
            return await super().is_row_action_allowed(request, name)
        return self.can_edit(request)

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
        self.refuse_masked(request, rule_fields(filters), "filter")
        if self.hidden and not mentions(filters, set(self.hidden)):
            parts.append(dict(self.hidden))
        if q and q.strip():
            parts.append(self.search_query(request, q.strip()[:200]))
        if filters is not None and not filters.is_empty():
            fields = {f.name: f for f in self.get_fields_list(request, include_nested=True)}
            built = build_filter_query(filters, fields, self.get_filter_registry(), self, request)
            if built:
                parts.append(ms_rewrite(built))
        return merge_conditions([p for p in parts if p])

    def refuse_masked(self, request: Request, names, what: str) -> None:
        """A viewer may not filter or sort by personal data: each answer would leak a bit."""
        if not roles.is_masked(request):
            return
        masked = sorted(n for n in names if roles.is_masked_field(n))
        if masked:
            raise HTTPException(400, f"viewers cannot {what} by {', '.join(masked)}")

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
        self.refuse_masked(request, [name for name, _ in sorts or []], "sort")
        query = await self.build_query(request, q, filters)
        skip = min(max(0, skip), MAX_SKIP)  # a page number past int64 is just past the end
        cursor = self.document.find(query).sort(self.sort_spec(sorts)).skip(skip)
        if limit > 0:
            cursor = cursor.limit(limit)
        return [self.present(request, d) for d in await cursor.to_list()]

    async def count(
        self, request: Request, q: str | None = None, filters: FilterGroup | None = None
    ) -> int:
        unfiltered = not (q and q.strip()) and (filters is None or filters.is_empty())
        coll = self.document.get_pymongo_collection()
        if unfiltered and not self.scope(request):
            # An estimate, as MongoDB's own: soft-deleted rows included (see `estimates`).
            return await estimated_count(coll)
        query = await self.build_query(request, q, filters)
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
        if isinstance(field, ListField) and isinstance(field.field, JSONField):
            value = _jsonable(value)  # a list of blocks: each item as JSON, not its repr
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
        doc = await self._saved(request, doc, None, set(data))
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
            if k in self.document.model_fields
            and k not in self.read_only_fields
            and k != "id"
            and not _blank_form_value(doc, k, v)
        }
        if self.tenant_field and roles.org_scope(request):
            changes.pop(self.tenant_field, None)
        try:
            updated = self.document.model_validate({**doc.model_dump(by_alias=True), **changes})
        except ValidationError as exc:
            raise pydantic_error_to_form_validation_errors(exc) from exc
        names = {k for k in changes if getattr(updated, k, None) != getattr(doc, k, None)}
        await self._emit_before_edit(request, data, updated, pk=pk, old_data=before)
        updated = await self._saved(request, updated, doc, names)
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
            try:
                await self.delete_model(request, doc)
            except ChatAdminError as exc:
                raise FormValidationError({"_": str(exc)}) from exc
            await self._audit(request, "admin_delete", doc, _public(doc), None)
            await self._emit_after_delete(request, pk, doc)
            count += 1
        return count

    async def validate_fields(self, request: Request, data: dict, exclude: Any = ()) -> None:
        """starlette-admin's field checks, except for embedded objects left blank (an optional
        object the form shows as an empty sub-form: `edit` keeps what is stored)."""
        blank = {
            k
            for k, v in data.items()
            if isinstance(v, dict) and v and all(x in (None, "") for x in v.values())
        }
        await super().validate_fields(request, data, (*exclude, *blank))

    # -- the write rules: a view over a collection with rules writes through its service -------

    # Fields kept by the service (counters, derived values): shown, never taken from a form.
    read_only_fields: ClassVar[frozenset[str]] = frozenset()

    async def save_model(
        self, request: Request, doc: Any, before: Any | None, names: set[str]
    ) -> Any:
        """Store a new (`before is None`) or changed document; `names`: the fields changed.

        The default writes the document whole, for collections without write rules.
        """
        if before is None:
            return await doc.insert()
        await doc.replace()  # whole-document write: datetimes stay dates on every server
        return doc

    async def delete_model(self, request: Request, doc: Any) -> None:
        """Remove a document (a soft delete, where the collection has one)."""
        await doc.delete()

    async def _saved(self, request: Request, doc: Any, before: Any | None, names: set[str]):
        try:
            return await self.save_model(request, doc, before, names)
        except ChatAdminError as exc:
            raise FormValidationError({"_": str(exc)}) from exc

    async def handle_action(self, request: Request, selection: Any, name: str) -> Any:
        """Refuse an action the role may not run with a 403 (starlette-admin answers 400),
        and audit every export."""
        if not await self.is_action_allowed(request, name):
            return JSONResponse({"msg": "Forbidden"}, status_code=403)
        if name == "export":
            response = await self._export(request, selection)
        else:
            response = await super().handle_action(request, selection, name)
        if name == "export" and isinstance(response, Response) and response.status_code == 200:
            form = await request.form()
            await self._audit_list(
                request,
                "list_exported",
                {
                    "format": str(form.get("format") or ""),
                    "scope": str(form.get("scope") or "page"),
                },
            )
        return response

    async def _export(self, request: Request, selection: Any) -> Response:
        """A streamed export, or back to the list with the reason it cannot be."""
        max_rows = request.app.state.settings.chatadmin_export_max_rows
        try:
            return await exports.export_response(self, request, selection, max_rows)
        except ActionFailed as exc:
            flash(request, exc.msg, "error")
            fallback = str(request.url_for("admin:list", key=self.key))
            target = request.query_params.get("_origin") or fallback
            return RedirectResponse(safe_redirect_url(target, request, fallback), 303)

    async def _audit(self, request: Request, action: str, doc: Any, before, after) -> None:
        user = roles.staff(request)
        target = audit.resource(doc)
        await audit_admin(
            request,
            action,
            actor=user.username if user else "?",
            org_id=target.org_id if target.org_id != audit.ALL_ORGS else (user and user.org_id),
            resource=target,
            before=before,
            after=after,
        )

    async def _audit_list(self, request: Request, action: str, metadata: dict) -> None:
        """An audit entry about a whole list of this view (exports)."""
        user = roles.staff(request)
        org = roles.org_scope(request) or audit.ALL_ORGS
        await audit_admin(
            request,
            action,
            actor=user.username if user else "?",
            org_id=org,
            resource=audit.Resource(self.document.RESOURCE, None, org),
            metadata=metadata,
        )


class SoftDeleteView(DocumentView):
    """A view over a collection with soft deletes: deleting hides the row everywhere (the
    service keeps the counters in step) and the restore row action brings it back."""

    async def restore_model(self, request: Request, doc: Any) -> Any:
        """Undo `delete_model` through the collection's service."""
        raise NotImplementedError

    def is_deleted(self, doc: Any) -> bool:
        """Whether `doc` is soft-deleted: what restore undoes."""
        return bool(getattr(doc, "deleted", False))

    async def is_row_action_allowed_for_obj(self, request: Request, name: str, obj: Any) -> bool:
        """Restore is offered on deleted rows, delete on live ones."""
        if name == "restore" and not self.is_deleted(obj):
            return False
        if name == "delete" and self.is_deleted(obj):
            return False
        return await super().is_row_action_allowed_for_obj(request, name, obj)

    @row_action(
        "restore",
        "Restore",
        icon_class="fa fa-trash-arrow-up",
        confirmation="Restore this deleted row?",
        submit_btn_text="Restore",
    )
    async def restore(self, request: Request, pk: Any) -> str:
        self._require_admin(request)
        doc = await self.document.find_one({"_id": str(pk), **self.scope(request)})
        if doc is None:
            raise ActionFailed("This row no longer exists.")
        try:
            restored = await self.restore_model(request, doc)
        except ChatAdminError as exc:
            raise ActionFailed(str(exc)) from exc
        await self._audit(request, "admin_restore", doc, _public(doc), _public(restored))
        return "Restored."


def _blank_form_value(doc: Any, name: str, value: Any) -> bool:
    """A form value that only stands for "nothing entered": keep what is stored.

    starlette-admin renders an empty JSON object as `null`, an unset text as "" and an unset
    embedded object as a sub-form of blank fields.
    """
    current = getattr(doc, name, None)
    if value is None and isinstance(current, dict | list):
        return True
    if current is None and isinstance(value, dict):  # an embedded object's empty sub-form
        return all(_blank_form_value(doc, "", v) or v in (None, "") for v in value.values())
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
