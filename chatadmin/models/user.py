"""`users`: the people who talk to the AI application (not admin users)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from chatadmin.models.base import (
    ClientId,
    JsonObject,
    StorageSettings,
    TenantDocument,
    index,
    ms_property,
    new_id,
)
from chatadmin.models.jsonfield import ClientJsonObject
from chatadmin.models.message import QueryType
from chatadmin.models.schema import ApiDatetime, ApiIn, ApiOut, ApiQuery

UserRole = Literal["owner", "leader", "manager"]


def email_key(email: str | None, user_id: str) -> str:
    """The unique-per-org key for an email; users without one get a key of their own.

    A unique index lets two missing values through on the embedded server but not on MongoDB,
    so the indexed field is always present.
    """
    return email.strip().lower() if email else f"~none:{user_id}"


class User(TenantDocument):
    """An end user of an AI application."""

    user_id: ClientId = Field(default_factory=new_id)
    email: str | None = Field(default=None, max_length=320)
    email_key: str = ""
    username: str | None = Field(default=None, max_length=200)
    display_name: str | None = Field(default=None, max_length=200)
    role: UserRole = "manager"
    preferences: JsonObject = Field(default_factory=dict)
    metadata: JsonObject = Field(default_factory=dict)
    last_login_ms: int = 0
    last_login = ms_property("last_login_ms")
    message_count: int = 0
    thread_count: int = 0
    last_active_at_ms: int = 0
    last_active_at = ms_property("last_active_at_ms")

    RESOURCE: ClassVar[str] = "user"
    RESOURCE_KEY: ClassVar[str] = "user_id"

    class Settings(StorageSettings):
        name = "users"
        indexes = [
            index("org_id", "user_id", unique=True, name="org_user_uq"),
            index("org_id", "email_key", unique=True, name="org_email_uq"),
            index("org_id", "-last_active_at_ms", name="org_active"),
        ]


class UserIn(ApiIn):
    """`PUT /users/{id}`: creates the user or updates the fields given."""

    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    username: str | None = Field(default=None, max_length=200)
    display_name: str | None = Field(default=None, max_length=200)
    role: UserRole | None = None
    preferences: ClientJsonObject | None = None
    metadata: ClientJsonObject | None = None
    last_login: ApiDatetime | None = None


class UserOut(ApiOut):
    user_id: str
    org_id: str
    email: str | None
    username: str | None
    display_name: str | None
    role: str
    preferences: dict[str, Any]
    metadata: dict[str, Any]
    last_login: ApiDatetime | None
    message_count: int
    thread_count: int
    last_active_at: ApiDatetime | None
    created_at: ApiDatetime
    updated_at: ApiDatetime


class QuestionsQuery(ApiQuery):
    """`GET /users/{id}/questions` query string."""

    query_type: QueryType | None = None
    thread_id: ClientId | None = None
    limit: int = Field(default=20, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=1024)
