"""Rate limits at the API's doors: every request counts against its API key's window, every
message written against its user's windows (by role); over a limit answers 429 with
`Retry-After` and the `X-RateLimit-*` headers."""

from __future__ import annotations

import time

from starlette.requests import Request

from chatadmin.exceptions import RateLimited
from chatadmin.realtime.ratelimit import RateLimiter
from chatadmin.services import threads, users

CACHE_SIZE = 10_000
CACHE_TTL_S = 10.0  # a changed role (or a thread id used again) limits within seconds


class Recent:
    """Answers remembered for a few seconds (the thread owners and user roles of the message
    limits, read on every append)."""

    def __init__(self) -> None:
        self._items: dict[tuple, tuple[object, float]] = {}

    def get(self, key: tuple):
        hit = self._items.get(key)
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def put(self, key: tuple, value) -> None:
        if len(self._items) >= CACHE_SIZE:
            self._items.clear()
        self._items[key] = (value, time.monotonic() + CACHE_TTL_S)


def _recent(request: Request) -> Recent:
    state = request.app.state
    if getattr(state, "recent_limits", None) is None:
        state.recent_limits = Recent()
    return state.recent_limits


async def count_request(request: Request) -> None:
    """Count the request against its key (`request.state.rate` keeps what the response says)."""
    limiter: RateLimiter = request.app.state.limiter
    taken = await limiter.request(request.state.api_key.key_id)
    if not taken.allowed:
        raise RateLimited("too many requests for this API key; retry later", taken.headers())
    request.state.rate = taken


def headers(request: Request) -> dict[str, str]:
    """The X-RateLimit headers of the tightest limit the request counted against."""
    taken = getattr(request.state, "rate", None)
    return taken.headers() if taken is not None else {}


async def thread_owner(request: Request, org_id: str, thread_id: str) -> str:
    """Who a thread belongs to (NotFound for an unknown thread)."""
    key = ("owner", org_id, thread_id)
    owner = _recent(request).get(key)
    if owner is None:
        owner = (await threads.get_thread(org_id, thread_id)).user_id
        _recent(request).put(key, owner)
    return owner


async def role_of(request: Request, org_id: str, user_id: str) -> str | None:
    """A user's role (None for an unknown user: the default limit)."""
    key = ("role", org_id, user_id)
    role = _recent(request).get(key)
    if role is None:
        role = (await users.roles_of(org_id, {user_id})).get(user_id) or ""
        _recent(request).put(key, role)
    return role or None


async def count_message(request: Request, org_id: str, user_id: str | None) -> None:
    """Count one message against its user's windows (a message without a user is not)."""
    if not user_id:
        return
    limiter: RateLimiter = request.app.state.limiter
    taken = await limiter.messages(org_id, user_id, await role_of(request, org_id, user_id))
    if not taken.allowed:
        raise RateLimited(f"user {user_id!r} sent too many messages; retry later", taken.headers())
    if taken.remaining <= request.state.rate.remaining:
        request.state.rate = taken
