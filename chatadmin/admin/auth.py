"""Admin login: argon2id passwords, throttled failures, sessions with absolute and idle expiry.

The session lives in a signed cookie (HttpOnly, SameSite=Lax, Secure outside local use); it is
cleared and written anew at login. A session ends after 8 hours, or after an hour idle unless
"Remember me" was ticked; logging out, a new password, a new role or org, and deactivation end
every session of that user (a generation number in the session, checked on every request).
Every login and logout is audited; refused tries once a minute per address.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette_admin.auth import AuthProvider
from starlette_admin.exceptions import LoginFailed

from chatadmin.admin.roles import StaffUser
from chatadmin.admin.throttle import LOCK_SECONDS, LoginThrottle
from chatadmin.services import accounts, audit
from chatadmin.services.audit import ALL_ORGS

ABSOLUTE_SECONDS = 8 * 3600
IDLE_SECONDS = 3600  # "Remember me" lifts the idle limit, never the absolute one


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

    async def login(
        self, username: str, password: str, remember_me: bool, request: Request
    ) -> Response | None:
        ip = client_ip(request)
        username = username.strip()
        wait = await self.throttle.locked_for(username, ip)
        if not wait and not await self.throttle.reserve(username, ip):
            await self.throttle.failed(username, ip)
            wait = LOCK_SECONDS
        if wait:
            if await self.throttle.first_refusal(ip):  # one entry a minute per address
                await audit_admin(
                    request,
                    "login_refused",
                    actor=username or "?",
                    org_id=None,
                    success=False,
                    error="too many failed logins",
                    metadata={"audited": "the first refusal from this address in a minute"},
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
        request.session.update(
            {
                "admin_id": user.id,
                "login_at": now,
                "seen_at": now,
                "gen": user.session_generation,
                "remember": bool(remember_me),
            }
        )
        await audit_admin(request, "login", actor=user.username, org_id=user.org_id)
        return None

    async def logout(self, request: Request) -> Response | None:
        user = await self.authenticate(request)
        if user is not None:
            await accounts.end_sessions(user.admin_id)  # a copied cookie dies with this one
            await audit_admin(request, "logout", actor=user.username, org_id=user.org_id)
        request.session.clear()
        return None

    async def authenticate(self, request: Request) -> StaffUser | None:
        session = request.session
        admin_id = session.get("admin_id")
        if not admin_id:
            return None
        now = int(time.time())
        login_at, seen_at = int(session.get("login_at", 0)), int(session.get("seen_at", 0))
        idle = ABSOLUTE_SECONDS if session.get("remember") else IDLE_SECONDS
        if now - login_at > ABSOLUTE_SECONDS or now - seen_at > idle:
            session.clear()
            return None
        user = await accounts.load_admin(admin_id)
        if user is None or not user.is_active or session.get("gen") != user.session_generation:
            session.clear()
            return None
        if now - seen_at >= 30:  # refresh the idle clock without rewriting every response
            session["seen_at"] = now
        return StaffUser(
            username=user.username, admin_id=user.id, role=user.role, org_id=user.org_id
        )
