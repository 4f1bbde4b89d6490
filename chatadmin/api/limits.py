"""Rate limits at the API's doors: every request counts against its API key's window, every
message written against its user's windows (by role); over a limit answers 429 with
`Retry-After` and the `X-RateLimit-*` headers."""

from __future__ import annotations

from starlette.requests import Request

from chatadmin.exceptions import RateLimited
from chatadmin.realtime.ratelimit import RateLimiter
from chatadmin.services import users


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


async def count_message(request: Request, org_id: str, user_id: str | None) -> None:
    """Count one message against its user's windows (a message without a user is not)."""
    if not user_id:
        return
    roles = await users.roles_of(org_id, {user_id})
    limiter: RateLimiter = request.app.state.limiter
    taken = await limiter.messages(org_id, user_id, roles.get(user_id))
    if not taken.allowed:
        raise RateLimited(f"user {user_id!r} sent too many messages; retry later", taken.headers())
    if taken.remaining <= request.state.rate.remaining:
        request.state.rate = taken
