"""`admin_users` and `api_keys`: who may use the admin, and which backends may use the API."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from chatadmin.models.base import (
    ClientId,
    StorageSettings,
    TimestampedDocument,
    index,
    ms_property,
)

AdminRole = Literal["admin", "support", "viewer"]
ADMIN_ROLES = ("admin", "support", "viewer")
Scope = Literal["ingest", "read", "share", "admin"]
SCOPES = ("ingest", "read", "share", "admin")


class AdminUser(TimestampedDocument):
    """A person who logs in to the admin; `org_id` None means every org."""

    username: str = Field(min_length=1, max_length=150, pattern=r"^[A-Za-z0-9_.@+\-]+$")
    password_hash: str
    role: AdminRole
    org_id: ClientId | None = None
    is_active: bool = True
    last_login_at_ms: int = 0
    last_login_at = ms_property("last_login_at_ms")
    # Every session carries the generation it was opened in; bumping it ends them all
    # (logout, a new password, a changed role or org, deactivation).
    session_generation: int = 0

    RESOURCE: ClassVar[str] = "admin_user"
    RESOURCE_KEY: ClassVar[str] = "username"

    class Settings(StorageSettings):
        name = "admin_users"
        indexes = [index("username", unique=True, name="username_uq")]


class ApiKey(TimestampedDocument):
    """An API key: its public `key_id`, a sha256 of its secret, one org and scopes."""

    key_id: str = Field(min_length=8, max_length=64)
    org_id: ClientId
    name: str = Field(default="", max_length=200)
    key_hash: str
    scopes: list[Scope]
    revoked: bool = False
    last_used_at_ms: int = 0
    last_used_at = ms_property("last_used_at_ms")
    created_by: str | None = None

    RESOURCE: ClassVar[str] = "api_key"
    RESOURCE_KEY: ClassVar[str] = "key_id"

    class Settings(StorageSettings):
        name = "api_keys"
        indexes = [
            index("key_id", unique=True, name="key_id_uq"),
            index("org_id", "created_at_ms", name="org_created"),
        ]
