"""Calling the admin's views directly, without HTTP: a bare request with a query string and a
logged-in staff user, which is all `find_all` and `count` read from a request."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette_admin.types import RequestAction

from chatadmin.admin.roles import StaffUser


def fake_request(path: str, query: dict[str, str], user: StaffUser | None = None) -> Request:
    """A bare GET list request for `path` carrying `query` (and a logged-in staff user)."""
    request = Request(
        {
            "type": "http",
            "method": "GET",
            "path": path,
            "query_string": urlencode(query).encode(),
            "headers": [],
            "app": None,
        }
    )
    request.state.admin_user = user
    request.state.action = RequestAction.LIST
    return request


def staff(org_id: str | None = None) -> StaffUser:
    """An `admin` staff user, bound to `org_id` when given."""
    return StaffUser(username="bench", admin_id="bench", role="admin", org_id=org_id)
