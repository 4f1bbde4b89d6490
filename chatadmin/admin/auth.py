"""Admin login: argon2id passwords, throttled failures, sessions with absolute and idle expiry.

The session lives in a signed cookie (HttpOnly, SameSite=Lax, Secure outside local use); it is
cleared and written anew at login. Every login (success and failure) and logout is audited.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette_admin.auth import AuthProvider
from starlette_admin.exceptions import LoginFailed

from chatadmin.admin.roles import StaffUser
from chatadmin.admin.throttle import LoginThrottle
from chatadmin.models import AdminUser
from chatadmin.services import accounts, audit
from chatadmin.services.audit import ALL_ORGS

ABSOLUTE_SECONDS = 8 * 3600
IDLE_SECONDS = 3600
_CACHE_SECONDS = 5.0


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def staff_actor(request: Request, username: str) -> audit.Actor:
    """An admin user as the actor of what they do in the admin."""
    return audit.Actor.of_request(request, "admin", username, via="admin")


async def audit_admin(
    request: Request,
    action: str,
    *,
    actor: str,
    org_id: str | None,
    resource: audit.Resource | None = None,
    success: bool = True,
    error: str | None = None,
    before: dict | None = None,
    after: dict | None = None,
    metadata: dict | None = None,
) -> None:
    """An audit entry for something an admin user did (or tried); a session by default."""
    target = resource or audit.Resource("admin_session", None, org_id or ALL_ORGS)
    await audit.record(
        staff_actor(request, actor),
        action,
        target,
        before,
        after,
        success=success,
        error_message=error,
        metadata=metadata,
        org_id=org_id or target.org_id,
    )


class StaffAuthProvider(AuthProvider):
    """Username and password login for `admin_users`."""

    def __init__(self, throttle: LoginThrottle) -> None:
        super().__init__(login_path="/login", logout_path="/logout")
        self.throttle = throttle
        self._users: dict[str, tuple[AdminUser | None, float]] = {}

    async def login(
        self, username: str, password: str, remember_me: bool, request: Request
    ) -> Response | None:
        ip = client_ip(request)
        username = username.strip()
        wait = await self.throttle.locked_for(username, ip)
        if wait:
            await audit_admin(
                request,
                "login_refused",
                actor=username or "?",
                org_id=None,
                success=False,
                error="too many failed logins",
            )
            minutes = max(1, round(wait / 60))
            raise LoginFailed(
                f"Too many failed logins. Try again in {minutes} minute{'s' * (minutes != 1)}."
            )
        user = await accounts.authenticate_admin(username, password) if username else None
        if user is None:
            locked = await self.throttle.failed(username, ip)
            await audit_admin(
                request,
                "login_failed",
                actor=username or "?",
                org_id=None,
                success=False,
                error="wrong username or password",
            )
            if locked:
                raise LoginFailed("Too many failed logins. Try again in 15 minutes.")
            raise LoginFailed("Wrong username or password.")
        await self.throttle.succeeded(username, ip)
        request.session.clear()  # a fresh session at every login
        now = int(time.time())
        request.session.update({"admin_id": user.id, "login_at": now, "seen_at": now})
        await audit_admin(request, "login", actor=user.username, org_id=user.org_id)
        return None

    async def logout(self, request: Request) -> Response | None:
        user = await self.authenticate(request)
        if user is not None:
            await audit_admin(request, "logout", actor=user.username, org_id=user.org_id)
        request.session.clear()
        return None

    async def _load(self, admin_id: str) -> AdminUser | None:
        hit = self._users.get(admin_id)
        now = time.monotonic()
        if hit and hit[1] > now:
            return hit[0]
        user = await AdminUser.find_one({"_id": str(admin_id)})
        if len(self._users) > 1000:
            self._users.clear()
        self._users[admin_id] = (user, now + _CACHE_SECONDS)
        return user

    async def authenticate(self, request: Request) -> StaffUser | None:
        session = request.session
        admin_id = session.get("admin_id")
        if not admin_id:
            return None
        now = int(time.time())
        login_at, seen_at = int(session.get("login_at", 0)), int(session.get("seen_at", 0))
        if now - login_at > ABSOLUTE_SECONDS or now - seen_at > IDLE_SECONDS:
            session.clear()
            return None
        user = await self._load(admin_id)
        if user is None or not user.is_active:
            session.clear()
            return None
        if now - seen_at >= 30:  # refresh the idle clock without rewriting every response
            session["seen_at"] = now
        return StaffUser(
            username=user.username, admin_id=user.id, role=user.role, org_id=user.org_id
        )
