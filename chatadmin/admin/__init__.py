"""The admin at `/admin` (starlette-admin): every collection, grouped, behind a staff login."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount
from starlette_admin import BaseAdmin, DropDown
from starlette_admin.export import ExportConfig

from chatadmin.admin import views
from chatadmin.admin.auth import ABSOLUTE_SECONDS, StaffAuthProvider
from chatadmin.admin.conversation import ConversationView
from chatadmin.admin.dashboard import Dashboard
from chatadmin.admin.once import ShowSecretOnce
from chatadmin.admin.realtime import RealtimeView
from chatadmin.admin.retention import RetentionView
from chatadmin.admin.throttle import LoginThrottle
from chatadmin.middleware import ClientGoneMiddleware
from chatadmin.settings import Settings

TEMPLATES = Path(__file__).parent / "templates"


def build_admin(settings: Settings, store) -> BaseAdmin:
    """The admin app, its views grouped as in the spec, its login throttled through `store`."""
    secret = settings.secret_key()
    admin = BaseAdmin(
        title="chatadmin",
        base_url="/admin",
        route_name="admin",
        templates_dir=str(TEMPLATES),
        index_view=Dashboard(),
        auth_provider=StaffAuthProvider(LoginThrottle(store, settings.redis_prefix)),
        secret_key=secret,
        export_config=ExportConfig(max_rows=settings.chatadmin_export_max_rows),
        middlewares=[
            Middleware(ClientGoneMiddleware),
            Middleware(
                SessionMiddleware,
                secret_key=secret,
                session_cookie="chatadmin_session",
                max_age=ABSOLUTE_SECONDS,
                same_site="lax",
                https_only=settings.secure_cookies,
            ),
            Middleware(ShowSecretOnce),
        ],
        debug=False,  # True turns on starlette-admin's own DEBUG console logging
    )
    admin.add_view(ConversationView())
    groups = {
        "Conversations": [views.ThreadView, views.MessageView, views.ShareView, views.ContextView],
        "Analyses": [
            views.AnalysisView,
            views.SavedAnalysisView,
            views.ExecutionView,
            views.CacheView,
        ],
        "Audit": [
            views.AuditLogView,
            views.ReportedAuditView,
            views.MigrationView,
            RetentionView,
        ],
        "People": [views.UserView, views.ConnectionView],
        "Analytics": [views.AnalyticsView, RealtimeView],
        "Settings": [views.AdminUserView, views.ApiKeyView],
    }
    icons = {
        "Conversations": "fa fa-comments",
        "Analyses": "fa fa-chart-line",
        "Audit": "fa fa-clipboard-list",
        "People": "fa fa-users",
        "Analytics": "fa fa-chart-column",
        "Settings": "fa fa-gear",
    }
    for label, members in groups.items():
        admin.add_view(DropDown(label, views=[v() for v in members], icon=icons[label]))
    return admin


def mount_admin(app: Starlette, settings: Settings, store) -> None:
    """Mount the admin at `/admin`; its handlers read the settings and the real-time hub from
    their own app's state (a mounted app is `request.app` inside it)."""
    admin = build_admin(settings, store)
    admin.mount_to(app)
    app.state.admin_throttle = admin.auth_provider.throttle
    admin_app = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == "/admin")
    admin_app.state.settings = settings
    admin_app.state.realtime = app.state.realtime
