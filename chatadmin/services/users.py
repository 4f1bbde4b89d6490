"""Users of the AI applications: create-or-update by id, read."""

from __future__ import annotations

from typing import Any

from pymongo.errors import DuplicateKeyError

from chatadmin.clock import stamp, to_ms, utcnow
from chatadmin.exceptions import Conflict, NotFound
from chatadmin.models import User
from chatadmin.models.base import new_id
from chatadmin.models.user import email_key

UPDATABLE = {"email", "username", "display_name", "role", "preferences", "metadata", "last_login"}


async def upsert_user(org_id: str, user_id: str, **fields: Any) -> tuple[User, bool]:
    """Create the user or update the given fields; returns (user, created)."""
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValueError(f"unknown user fields: {sorted(unknown)}")
    current = await User.find_one({"org_id": org_id, "user_id": str(user_id)})
    merged = {**(current.model_dump(by_alias=True) if current else {}), **fields}
    merged.update(org_id=org_id, user_id=str(user_id))
    user = User.model_validate(merged)
    user.email_key = email_key(user.email, user.user_id)
    doc = user.model_dump(by_alias=True, include=UPDATABLE | {"email_key"})
    now = utcnow()
    key = {"org_id": org_id, "user_id": str(user_id)}
    # update_one, not find_one_and_update: nx-27017 ignores $setOnInsert in the latter's upserts.
    try:
        await User.get_pymongo_collection().update_one(
            key,
            {
                "$set": {**doc, **stamp(now)},
                "$setOnInsert": {
                    "_id": new_id(),
                    "created_at": now,
                    "created_at_ms": to_ms(now),
                    "message_count": 0,
                    "thread_count": 0,
                    "last_active_at_ms": 0,
                },
            },
            upsert=True,
        )
    except DuplicateKeyError as exc:
        raise Conflict(f"email {user.email!r} is already used by another user") from exc
    saved = await User.get_pymongo_collection().find_one(key)
    return User.model_validate(saved), current is None


async def get_user(org_id: str, user_id: str) -> User:
    user = await User.find_one({"org_id": org_id, "user_id": str(user_id)})
    if user is None:
        raise NotFound(f"user {user_id!r} not found")
    return user
