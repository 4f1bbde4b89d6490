"""ASGI middleware around the whole app: request body limits, trusted proxies, security
headers, and clients that hang up mid-request.

Body limits are enforced before anything reads the body: a declared `Content-Length` past the
limit is answered 413 at once, and a body sent without one is counted as it arrives and cut off
at the limit. Before the 413 goes out, what the client still sends is read and thrown away (up
to `DRAIN_MAX_BYTES` and `DRAIN_MAX_S`): a server that closes a socket with unread data in it
resets the connection, and the client then loses the 413 and sees only the reset. The memory
stays constant either way. The admin's forms get a small limit (its login form a tiny one); the
API keeps `CHATADMIN_MAX_BODY_BYTES`. Proxy headers (`X-Forwarded-For`, `X-Forwarded-Proto`) are
believed only from the addresses in `CHATADMIN_TRUSTED_PROXIES`, none by default. A client
that hangs up before its body is read is logged as gone (INFO), not as an error with a traceback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatadmin.settings import Settings

log = logging.getLogger("chatadmin.middleware")

# The admin's pages load scripts and styles from /static and /admin/statics only; inline
# scripts of starlette-admin's templates need 'unsafe-inline' (they carry no nonce).
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
DOCS_PATHS = ("/api/v1/docs",)  # Swagger UI runs an inline bootstrap of its own
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_MAX_S = 5.0


async def _drain(receive: Receive, declared: int | None = None) -> None:
    """Read and discard the rest of a refused body, within the drain bounds."""
    if declared is not None and declared > DRAIN_MAX_BYTES:
        return  # too much to wait for: the client gets the 413 if it reads before it writes
    deadline = time.monotonic() + DRAIN_MAX_S
    drained = 0
    while drained <= DRAIN_MAX_BYTES and (left := deadline - time.monotonic()) > 0:
        try:  # a client that declared more than it sends is not waited for past the deadline
            msg = await asyncio.wait_for(receive(), left)
        except TimeoutError:
            return
        if msg["type"] != "http.request":
            return
        drained += len(msg.get("body", b""))
        if not msg.get("more_body", False):
            return


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def body_limit(settings: Settings, path: str) -> int:
    """The largest body accepted for a request to `path`."""
    if path.startswith("/admin/login"):
        return settings.chatadmin_max_login_bytes
    if path.startswith("/admin"):
        return settings.chatadmin_max_form_bytes
    return settings.chatadmin_max_body_bytes


class BodyLimitMiddleware:
    """413 for bodies past their path's limit, before the app reads a byte of them."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(self.settings, scope["path"])
        message = f"request body is larger than {limit} bytes"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(send, 400, "bad_request", "Content-Length is not a number")
                return
            if int(declared) > limit:
                await _drain(receive, int(declared))
                await _refuse(send, 413, "too_large", message)
                return
        seen = 0
        started = overflow = ended = False

        async def counted() -> Message:
            nonlocal seen, overflow, ended
            if overflow:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                ended = not msg.get("more_body", False)
                if seen > limit:
                    # The app sees a client that went away; the 413 is ours to send.
                    overflow = True
                    return {"type": "http.disconnect"}
            return msg

        async def watched(msg: Message) -> None:
            nonlocal started
            if overflow and not started:
                return  # whatever the app answers to a vanished client, the answer is 413
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counted, watched)
        except Exception:
            if not overflow or started:
                raise
        if overflow and not started:
            if not ended:
                await _drain(receive)
            await _refuse(send, 413, "too_large", message)


class ProxyHeadersMiddleware:
    """The client address and scheme from `X-Forwarded-*`, only when a trusted proxy sent them."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.trusted = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies()]

    def _trusts(self, host: str | None) -> bool:
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.trusted:
            client = scope.get("client")
            if client and self._trusts(client[0]):
                headers = dict(scope["headers"])
                forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1")
                hops = [h.strip() for h in forwarded.split(",") if h.strip()]
                # The nearest hop that is not one of our proxies is the client.
                while hops and self._trusts(hops[-1]):
                    hops.pop()
                if hops:
                    scope = dict(scope, client=(hops[-1], 0))
                proto = headers.get(b"x-forwarded-proto", b"").decode("latin-1").strip()
                if proto in ("http", "https"):
                    scope = dict(scope, scheme=proto)
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """CSP, frame denial, `nosniff` and a referrer policy on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"].startswith(DOCS_PATHS)

        async def with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                present = {k.lower() for k, _ in msg.get("headers", [])}
                extra = [
                    (k, v)
                    for k, v in SECURITY_HEADERS
                    if k not in present and not (docs and k == b"content-security-policy")
                ]
                msg = dict(msg, headers=[*msg.get("headers", []), *extra])
            await send(msg)

        await self.app(scope, receive, with_headers)


class ClientGoneMiddleware:
    """A client that hung up before its body was all read: nothing was written and nobody is
    left to answer, so one INFO line instead of a traceback. Outermost in the app and in the
    admin's (whose own middleware reads forms, past the reach of exception handlers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            self._gone(scope)
        except BaseExceptionGroup as group:  # from middleware that runs the app in a task group
            if group.split(ClientDisconnect)[1] is not None:
                raise
            self._gone(scope)

    @staticmethod
    def _gone(scope: Scope) -> None:
        log.info("client went away before its request was read: %s %s", scope.get("method"),
                 scope.get("path"))  # fmt: skip
