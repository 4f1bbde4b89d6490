"""A view for every collection, as class attributes plus a few hooks (grouped in `__init__`)."""

from __future__ import annotations

from typing import Any, ClassVar

from starlette.requests import Request
from starlette_admin import action, link_row_action, row_action
from starlette_admin.exceptions import ActionFailed, FormValidationError
from starlette_admin.fields import EnumField, PasswordField, StringField
from starlette_admin.types import RequestAction

from chatadmin.admin import roles
from chatadmin.admin.base import DocumentView, SoftDeleteView
from chatadmin.exceptions import ChatAdminError, InvalidTransition
from chatadmin.models import (
    AdminUser,
    Analysis,
    ApiKey,
    AuditLog,
    CacheEntry,
    ChatContext,
    Connection,
    DailyAnalytics,
    Execution,
    Message,
    MigrationRecord,
    SavedAnalysis,
    SharedThread,
    Thread,
    User,
)
from chatadmin.models.admin_user import ADMIN_ROLES, SCOPES
from chatadmin.models.thread import LIVE_STATUSES
from chatadmin.services import accounts, contexts, executions, messages, threads, users

NOTE_FORM = """<form><div class="mb-2"><label class="form-label" for="note">Note for this
thread (visible to staff only)</label><textarea class="form-control" id="note" name="note"
rows="4" maxlength="5000" required></textarea></div></form>"""


class ThreadView(SoftDeleteView):
    document = Thread
    key = "threads"
    display_name = "Threads"
    icon = "fa fa-comments"
    field_names = (
        "thread_id",
        "title",
        "org_id",
        "user_id",
        "status",
        "message_count",
        "total_tokens",
        "tags",
        "is_pinned",
        "is_favorited",
        "initial_source",
        "type",
        "description",
        "error_count",
        "notes",
        "analysis_ids",
        "context_summary",
        "metadata",
        "created_at",
    )
    exclude_fields_from_list: ClassVar = [
        "description",
        "notes",
        "analysis_ids",
        "context_summary",
        "metadata",
        "type",
        "error_count",
    ]
    search_fields = ("title", "thread_id", "user_id")
    filter_fields = ("org_id", "user_id", "thread_id", "status", "tags", "created_at")
    hidden: ClassVar = {"status": {"$in": LIVE_STATUSES}}  # a filter on status shows deleted
    read_only_fields = frozenset(
        {"status", "message_count", "next_seq", "total_tokens", "total_response_ms",
         "response_count", "error_count", "last_message_at_ms", "last_activity_ms",
         "recent_claims", "analysis_ids", "notes"}
    )  # fmt: skip

    async def save_model(self, request: Request, doc: Any, before: Any, names: set[str]) -> Any:
        if before is None:
            return await threads.create_thread(doc.org_id, doc.user_id, **_fields(doc))
        changes = {n: getattr(doc, n) for n in names & threads.EDITABLE}
        return await threads.edit_thread(doc.org_id, doc.thread_id, **changes)

    async def delete_model(self, request: Request, doc: Any) -> None:
        await threads.soft_delete(doc.org_id, doc.thread_id)

    async def restore_model(self, request: Request, doc: Any) -> Any:
        return await threads.restore(doc.org_id, doc.thread_id)

    def is_deleted(self, doc: Any) -> bool:
        return doc.status == "deleted"

    fields_default_sort: ClassVar = [("created_at_ms", True)]
    sortable_fields: ClassVar = ["created_at", "message_count", "total_tokens", "title"]

    @link_row_action("conversation", "Open conversation", icon_class="fa fa-message")
    def open_conversation(self, request: Request, pk: Any) -> str:
        return str(request.url_for("admin:conversation-by-pk", pk=pk))

    @row_action(
        "add_note",
        "Add a note",
        icon_class="fa fa-note-sticky",
        form=NOTE_FORM,
        confirmation="Add this note to the thread?",
        submit_btn_text="Add note",
        modal_size="md",
    )
    async def add_note(self, request: Request, pk: Any) -> str:
        thread = await self.find_by_pk(request, pk)
        if thread is None:
            raise ActionFailed("This thread no longer exists.")
        text = str((await request.form()).get("note", ""))
        user = roles.staff(request)
        try:
            await threads.add_note(thread.org_id, thread.thread_id, user.username, text)
        except ChatAdminError as exc:
            raise ActionFailed(str(exc)) from exc
        await self._audit(request, "note_added", thread, None, {"note": text[:500]})
        return "Note added."

    async def is_row_action_allowed(self, request: Request, name: str) -> bool:
        if name == "add_note":
            return roles.can_annotate(request)
        return await super().is_row_action_allowed(request, name)


class MessageView(SoftDeleteView):
    document = Message
    key = "messages"
    display_name = "Messages"
    icon = "fa fa-message"
    field_names = (
        "message_id",
        "thread_id",
        "seq",
        "role",
        "text",
        "org_id",
        "user_id",
        "status",
        "query_type",
        "execution_status",
        "analysis_id",
        "execution_id",
        "content",
        "question_context",
        "ai_metadata",
        "feedback",
        "error",
        "metadata",
        "deleted",
        "created_at",
    )
    exclude_fields_from_list: ClassVar = [
        "content",
        "question_context",
        "ai_metadata",
        "feedback",
        "error",
        "metadata",
        "analysis_id",
        "execution_id",
        "message_id",
        "query_type",
    ]
    search_fields = ("text",)
    filter_fields = ("org_id", "user_id", "thread_id", "role", "status", "query_type",
                     "execution_status", "deleted", "created_at")  # fmt: skip
    hidden: ClassVar = {"deleted": False}  # a filter on `deleted` shows the deleted ones
    # What an operator may correct; the identity, the blocks and the links stay as written.
    exclude_fields_from_edit: ClassVar = [
        "message_id", "thread_id", "seq", "org_id", "user_id", "content", "question_context",
        "feedback", "error", "analysis_id", "execution_id", "execution_status", "deleted",
        "created_at",
    ]  # fmt: skip
    read_only_fields = frozenset({"seq", "deleted", "deleted_at_ms", "search_terms"})

    async def save_model(self, request: Request, doc: Any, before: Any, names: set[str]) -> Any:
        if before is None:
            return await messages.insert_message(doc)
        changes = {n: getattr(doc, n) for n in names}
        return await messages.edit_message(doc.org_id, doc.message_id, **changes)

    async def delete_model(self, request: Request, doc: Any) -> None:
        await messages.soft_delete(doc.org_id, doc.message_id)

    async def restore_model(self, request: Request, doc: Any) -> Any:
        return await messages.restore(doc.org_id, doc.message_id)

    text_search = True  # the search box runs a full-text search over message text
    sortable_fields: ClassVar = ["created_at", "seq"]

    @link_row_action("conversation", "Open conversation", icon_class="fa fa-comments")
    def open_conversation(self, request: Request, pk: Any) -> str:
        return str(request.url_for("admin:conversation-by-message", pk=pk))


class ShareView(DocumentView):
    document = SharedThread
    key = "shares"
    display_name = "Shares"
    icon = "fa fa-share-nodes"
    field_names = (
        "share_id",
        "thread_id",
        "org_id",
        "revoked",
        "size_bytes",
        "expires_at",
        "created_by",
        "snapshot",
        "created_at",
    )
    exclude_fields_from_list: ClassVar = ["snapshot"]
    search_fields = ("thread_id", "share_id")
    filter_fields = ("org_id", "thread_id", "revoked", "created_at")


class ContextView(DocumentView):
    document = ChatContext
    key = "contexts"
    display_name = "Contexts"
    icon = "fa fa-brain"
    field_names = (
        "context_id",
        "thread_id",
        "org_id",
        "scope_type",
        "scope_ref",
        "token_count",
        "key_points",
        "decisions",
        "follow_ups",
        "previous_queries",
        "context_window",
        "references",
        "subject",
        "expires_at",
        "created_at",
    )
    exclude_fields_from_list: ClassVar = [
        "key_points",
        "decisions",
        "follow_ups",
        "previous_queries",
        "context_window",
        "references",
        "subject",
    ]
    search_fields = ("context_id", "thread_id")
    filter_fields = ("org_id", "thread_id", "scope_type", "created_at")

    async def save_model(self, request: Request, doc: Any, before: Any, names: set[str]) -> Any:
        fields = {n: getattr(doc, n) for n in (names if before else set(_fields(doc)))}
        ttl = request.app.state.settings.chatadmin_context_ttl_days
        return await contexts.upsert_context(
            doc.org_id, doc.context_id, ttl_days=ttl,
            **{k: v for k, v in fields.items() if k in contexts.FIELDS},
        )  # fmt: skip


class AnalysisView(DocumentView):
    document = Analysis
    key = "analyses"
    display_name = "Analyses"
    icon = "fa fa-chart-line"
    field_names = (
        "analysis_id",
        "title",
        "org_id",
        "user_id",
        "category",
        "is_template",
        "usage_count",
        "tags",
        "description",
        "question",
        "thread_id",
        "message_id",
        "execution_id",
        "result",
        "parameters",
        "mcp_calls",
        "generated_script",
        "execution_ms",
        "data_sources",
        "similar_queries",
        "metadata",
        "created_at",
    )
    exclude_fields_from_list: ClassVar = [
        "description",
        "question",
        "thread_id",
        "message_id",
        "execution_id",
        "result",
        "parameters",
        "mcp_calls",
        "generated_script",
        "data_sources",
        "similar_queries",
        "metadata",
    ]
    search_fields = ("title", "description")
    text_search = True
    filter_fields = (
        "org_id",
        "user_id",
        "thread_id",
        "category",
        "is_template",
        "query_type",
        "created_at",
    )


class SavedAnalysisView(DocumentView):
    document = SavedAnalysis
    key = "saved-analyses"
    display_name = "Saved analyses"
    icon = "fa fa-bookmark"
    field_names = (
        "saved_id",
        "name",
        "org_id",
        "user_id",
        "analysis_id",
        "usage_count",
        "category",
        "tags",
        "description",
        "template_variables",
        "created_at",
    )
    exclude_fields_from_list: ClassVar = ["description", "template_variables"]
    search_fields = ("name", "saved_id", "user_id")
    filter_fields = ("org_id", "user_id", "category", "created_at")


class ExecutionView(DocumentView):
    document = Execution
    key = "executions"
    display_name = "Executions"
    icon = "fa fa-gears"
    field_names = (
        "execution_id",
        "status",
        "org_id",
        "user_id",
        "thread_id",
        "message_id",
        "execution_ms",
        "cache_hit",
        "question",
        "generated_script",
        "parameters",
        "result",
        "error",
        "warnings",
        "mcp_calls",
        "mcp_errors",
        "memory_used_mb",
        "cpu_percent",
        "created_at",
    )
    exclude_fields_from_list: ClassVar = [
        "question",
        "generated_script",
        "parameters",
        "result",
        "error",
        "warnings",
        "mcp_calls",
        "mcp_errors",
        "memory_used_mb",
        "cpu_percent",
        "message_id",
    ]
    search_fields = ("execution_id", "thread_id", "user_id")
    filter_fields = ("org_id", "user_id", "thread_id", "status", "created_at")
    read_only_fields = frozenset({"started_at_ms", "completed_at_ms"})

    async def save_model(self, request: Request, doc: Any, before: Any, names: set[str]) -> Any:
        if before is None:
            return await executions.create_execution(doc.org_id, **_fields(doc))
        fields = {n: getattr(doc, n) for n in names - {"status"}}
        change = executions.StatusChange(doc.execution_id, doc.status, fields)
        (done,) = await executions.change_executions(doc.org_id, [change])
        if done.outcome != "updated":
            raise InvalidTransition(done.message)
        return done.run


class CacheView(DocumentView):
    document = CacheEntry
    key = "cache"
    display_name = "Cache"
    icon = "fa fa-database"
    field_names = (
        "cache_key",
        "question",
        "org_id",
        "hit_count",
        "expires_at",
        "analysis_id",
        "parameters",
        "result",
        "created_at",
    )
    exclude_fields_from_list: ClassVar = ["parameters", "result"]
    search_fields = ("question", "cache_key")
    filter_fields = ("org_id", "created_at")


class AuditLogView(DocumentView):
    """What chatadmin itself recorded (staff, API and system actions); read-only for all."""

    document = AuditLog
    key = "audit-logs"
    display_name = "Audit logs"
    icon = "fa fa-clipboard-list"
    writable = False
    hidden: ClassVar[dict] = {"source": {"$ne": "ingest"}}
    field_names = (
        "created_at",
        "action",
        "actor_type",
        "actor_id",
        "resource_type",
        "resource_id",
        "org_id",
        "success",
        "ip_address",
        "user_agent",
        "error_message",
        "before",
        "after",
        "changes",
        "metadata",
    )
    exclude_fields_from_list: ClassVar = [
        "before",
        "after",
        "changes",
        "metadata",
        "user_agent",
        "error_message",
    ]
    search_fields = ("action", "actor_id", "resource_id", "resource_type")
    filter_fields = (
        "org_id",
        "actor_type",
        "action",
        "resource_type",
        "resource_id",
        "success",
        "created_at",
    )


class ReportedAuditView(AuditLogView):
    """Audit events that backends reported through `/ingest`: their claims, apart from what
    chatadmin recorded, with the API key that sent each."""

    key = "reported-audit"
    display_name = "Reported by backends"
    icon = "fa fa-inbox"
    hidden: ClassVar[dict] = {"source": "ingest"}
    field_names = ("created_at", "source_key_id", *AuditLogView.field_names[1:])
    filter_fields = (*AuditLogView.filter_fields, "source_key_id")


class MigrationView(DocumentView):
    document = MigrationRecord
    key = "migrations"
    display_name = "Migrations"
    icon = "fa fa-code-branch"
    writable = False
    tenant_field = None
    field_names = ("version", "name", "status", "applied_at", "execution_ms", "changes", "error")
    exclude_fields_from_list: ClassVar = ["changes"]
    fields_default_sort: ClassVar = [("version", False)]

    def is_accessible(self, request: Request) -> bool:
        return roles.is_admin(request) and roles.org_scope(request) is None


class UserView(DocumentView):
    document = User
    key = "users"
    display_name = "Users"
    icon = "fa fa-user"
    field_names = (
        "user_id",
        "email",
        "username",
        "display_name",
        "org_id",
        "role",
        "message_count",
        "thread_count",
        "preferences",
        "metadata",
        "created_at",
    )
    exclude_fields_from_list: ClassVar = ["preferences", "metadata"]
    search_fields = ("user_id", "email", "username", "display_name")
    filter_fields = ("org_id", "user_id", "role", "created_at")
    read_only_fields = frozenset({"message_count", "thread_count", "last_active_at_ms"})

    async def save_model(self, request: Request, doc: Any, before: Any, names: set[str]) -> Any:
        changes = {n: getattr(doc, n) for n in (names if before else set(_fields(doc)))}
        user, _created = await users.upsert_user(
            doc.org_id, doc.user_id, **{k: v for k, v in changes.items() if k in users.UPDATABLE}
        )
        return user

    @link_row_action("conversations", "Threads", icon_class="fa fa-comments")
    def user_threads(self, request: Request, pk: Any) -> str:
        return str(request.url_for("admin:conversation-user", pk=pk))


class ConnectionView(DocumentView):
    document = Connection
    key = "connections"
    display_name = "Connections"
    icon = "fa fa-plug"
    field_names = (
        "connection_id",
        "user_id",
        "org_id",
        "status",
        "presence_status",
        "device_type",
        "browser",
        "platform",
        "ip_address",
        "user_agent",
        "connected_at",
        "expires_at",
        "created_at",
    )
    search_fields = ("connection_id", "user_id")
    filter_fields = ("org_id", "user_id", "status", "created_at")


class AnalyticsView(DocumentView):
    document = DailyAnalytics
    key = "analytics"
    display_name = "Daily analytics"
    icon = "fa fa-chart-column"
    writable = False
    field_names = (
        "period_key",
        "org_id",
        "user_id",
        "messages",
        "user_messages",
        "assistant_messages",
        "threads",
        "tokens_total",
        "tokens_input",
        "tokens_output",
        "response_ms_sum",
        "response_count",
        "errors",
        "feedback_count",
        "helpful_count",
        "unhelpful_count",
        "rating_sum",
        "rating_count",
        "executions_success",
        "executions_failed",
    )
    fields_default_sort: ClassVar = [("period_start_ms", True)]
    search_fields = ("user_id", "period_key")
    filter_fields = ("org_id", "user_id", "period_key")


class AdminUserView(DocumentView):
    """Admins manage admin users (an org-bound admin cannot)."""

    document = AdminUser
    key = "admin-users"
    display_name = "Admin users"
    icon = "fa fa-user-shield"
    tenant_field = None
    creatable = True
    field_names = (
        StringField("username", required=True),
        PasswordField(
            "password",
            required=False,
            exclude_from_list=True,
            exclude_from_detail=True,
            help_text=f"At least {accounts.MIN_PASSWORD_LENGTH} characters. Leave "
            "empty when editing to keep the current password.",
        ),
        EnumField("role", choices=[(r, r.title()) for r in ADMIN_ROLES], required=True),
        StringField("org_id", help_text="Leave empty for access to every org."),
        "is_active",
        "last_login_at",
        "created_at",
    )
    exclude_fields_from_create: ClassVar = ["is_active", "last_login_at", "created_at"]
    exclude_fields_from_edit: ClassVar = ["username", "last_login_at", "created_at"]
    search_fields = ("username",)
    filter_fields = ("role",)

    def is_accessible(self, request: Request) -> bool:
        return roles.is_admin(request) and roles.org_scope(request) is None

    async def create(self, request: Request, data: dict) -> Any:
        self._require_admin(request)
        try:
            user = await accounts.create_admin_user(
                data.get("username") or "",
                data.get("password") or "",
                data.get("role") or "",
                data.get("org_id") or None,
            )
        except ChatAdminError as exc:
            raise FormValidationError({"password": str(exc)}) from exc
        await self._audit(
            request,
            "admin_user_created",
            user,
            None,
            {"username": user.username, "role": user.role, "org_id": user.org_id},
        )
        return user

    async def edit(self, request: Request, pk: Any, data: dict) -> Any:
        password = data.pop("password", None)
        if password:
            try:
                accounts.check_password(password)
            except ChatAdminError as exc:
                raise FormValidationError({"password": str(exc)}) from exc
            data["password_hash"] = accounts.hash_password(password)
        data["org_id"] = data.get("org_id") or None
        before = await AdminUser.find_one({"_id": str(pk)})
        user = await super().edit(request, pk, data)
        access = ("role", "org_id", "is_active")
        if password or (before and any(getattr(before, f) != getattr(user, f) for f in access)):
            await accounts.end_sessions(user.id)
        return user


class WordsField(EnumField):
    """A multiple choice shown as words ("ingest, read") in lists and details."""

    async def serialize_value(self, request: Request, value: Any) -> Any:
        labels = await super().serialize_value(request, value)
        action = request.state.action
        if isinstance(labels, list) and not (action.is_form() or action == RequestAction.EXPORT):
            return ", ".join(str(label) for label in labels)
        return labels


class ApiKeyView(DocumentView):
    """API keys: the secret is shown once, when the key is created."""

    document = ApiKey
    key = "api-keys"
    display_name = "API keys"
    icon = "fa fa-key"
    tenant_field = "org_id"
    creatable = True
    field_names = (
        StringField("key_id", exclude_from_create=True, read_only=True),
        StringField("org_id", required=True),
        StringField("name"),
        WordsField("scopes", choices=[(s, s) for s in SCOPES], multiple=True, required=True),
        "revoked",
        "last_used_at",
        "created_by",
        "created_at",
    )
    exclude_fields_from_create: ClassVar = ["revoked", "last_used_at", "created_by", "created_at"]
    exclude_fields_from_edit: ClassVar = [
        "key_id",
        "org_id",
        "last_used_at",
        "created_by",
        "created_at",
    ]
    search_fields = ("key_id", "name", "org_id")
    filter_fields = ("org_id", "revoked")

    def is_accessible(self, request: Request) -> bool:
        return roles.is_admin(request)

    async def create(self, request: Request, data: dict) -> Any:
        self._require_admin(request)
        org = roles.org_scope(request) or (data.get("org_id") or "").strip()
        user = roles.staff(request)
        try:
            key, plaintext = await accounts.create_api_key(
                org,
                list(data.get("scopes") or []),
                name=data.get("name") or "",
                created_by=f"admin:{user.username}",
            )
        except (ChatAdminError, ValueError) as exc:
            raise FormValidationError({"scopes": str(exc)}) from exc
        # Shown once in the answer's body (admin/once.py), never in a flash cookie.
        request.state.new_api_key_secret = {
            "key_id": key.key_id,
            "org_id": key.org_id,
            "scopes": list(key.scopes),
            "secret": plaintext,
        }
        await self._audit(
            request,
            "api_key_created",
            key,
            None,
            {"key_id": key.key_id, "org_id": key.org_id, "scopes": key.scopes},
        )
        return key

    @action(
        "revoke",
        "Revoke",
        confirmation="Revoke the selected keys? Clients using them will be refused within seconds.",
        submit_btn_text="Revoke",
    )
    async def revoke(self, request: Request, selection: Any) -> str:
        keys = await self.find_by_pks(request, await selection.pks())
        for key in keys:
            if await accounts.revoke_api_key(key.key_id):
                await self._audit(
                    request, "api_key_revoked", key, {"revoked": False}, {"revoked": True}
                )
        return f"Revoked {len(keys)} key(s)."


def _fields(doc: Any) -> dict:
    """A new document's own fields, to hand to the service that creates it."""
    skip = {"id", "org_id", "created_at_ms", "updated_at_ms", "ingest_hash", "search_terms"}
    return {k: getattr(doc, k) for k in type(doc).model_fields if k not in skip}
