"""Who is asking, and what they may do and see: roles, org scope and masking of personal data.

`admin` may do everything; `support` reads every conversation and personal data and adds notes,
but changes no raw data; `viewer` only reads, with emails, usernames, IP addresses and user
agents masked. An admin user bound to an org sees only that org's data, everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette_admin.auth.base import AdminUser

MASKED_FIELDS = frozenset({"email", "username", "display_name", "ip_address", "user_agent"})


@dataclass
class StaffUser(AdminUser):
    """The logged-in admin user as starlette-admin sees it."""

    admin_id: str = ""
    role: str = "viewer"
    org_id: str | None = None


def staff(request: Request) -> StaffUser | None:
    user = getattr(request.state, "admin_user", None)
    return user if isinstance(user, StaffUser) else None


def role(request: Request) -> str:
    user = staff(request)
    return user.role if user else "anonymous"


def is_admin(request: Request) -> bool:
    return role(request) == "admin"


def can_annotate(request: Request) -> bool:
    """Support staff and admins may add notes to threads."""
    return role(request) in ("admin", "support")


def is_masked(request: Request) -> bool:
    return role(request) == "viewer"


def is_masked_field(name: str) -> bool:
    """Whether a field path (`email`, `metadata.email`) names personal data."""
    return any(part in MASKED_FIELDS for part in str(name).split("."))


def org_scope(request: Request) -> str | None:
    """The only org this user may see, or None for every org."""
    user = staff(request)
    return user.org_id if user else None


def scope_query(request: Request, field: str = "org_id") -> dict:
    org = org_scope(request)
    return {field: org} if org else {}


def mask_value(field: str, value: Any) -> Any:
    """A masked rendering of one personal value (None stays None)."""
    if value is None or value == "":
        return value
    text = str(value)
    if field == "email" and "@" in text:
        local, _, domain = text.partition("@")
        tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
        return f"{local[:1]}***@***.{tld}" if tld else f"{local[:1]}***@***"
    if field == "ip_address":
        if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", text):
            return ".".join([*text.split(".")[:2], "x", "x"])
        return "***"
    if field == "user_agent":
        return "(hidden)"
    return f"{text[:1]}***"


def mask_document(data: dict) -> dict:
    """A copy of `data` with every personal field masked, at any depth."""
    out: dict = {}
    for key, value in data.items():
        if key in MASKED_FIELDS and isinstance(value, str | type(None)):
            out[key] = mask_value(key, value)
        elif isinstance(value, dict):
            out[key] = mask_document(value)
        elif isinstance(value, list):
            out[key] = [mask_document(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out
