"""Users of the AI applications: create-or-update by id, read."""

from __future__ import annotations

from typing import Any

from pymongo.errors import DuplicateKeyError

from chatadmin.clock import stamp, to_ms, utcnow
from chatadmin.exceptions import Conflict, NotFound
from chatadmin.models import User
from chatadmin.models.user import email_key

UPDATABLE = {
    "email",
    "username",
    "display_name",
    "role",
    "preferences",
    "metadata",
    "last_login_ms",
}

INSERT_FIELDS = UPDATABLE | {"email_key", "message_count", "thread_count", "last_active_at_ms"}


def new_user(org_id: str, user_id: str, **fields: Any) -> User:
    """A validated user with its derived fields: the last login as epoch ms, the email key."""
    last_login = fields.pop("last_login", None)
    user = User(org_id=org_id, user_id=str(user_id), **fields)
    user.last_login_ms = to_ms(last_login) if last_login else 0
    user.email_key = email_key(user.email, user.user_id)
    return user


def written(given: set[str]) -> set[str]:
    """The stored fields a write of the `given` input fields sets."""
    names = given & UPDATABLE
    if "email" in given:
        names.add("email_key")
    if "last_login" in given:
        names.add("last_login_ms")
    return names


async def upsert_user(org_id: str, user_id: str, **fields: Any) -> tuple[User, bool]:
    """Create the user or update the given fields; returns (user, created)."""
    if "last_login" in fields:  # a datetime; stored as epoch ms (update operators carry no dates)
        last_login = fields.pop("last_login")
        fields["last_login_ms"] = to_ms(last_login) if last_login else 0
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValueError(f"unknown user fields: {sorted(unknown)}")
    key = User.key_of(org_id, str(user_id))
    current = await User.find_one(key)
    # Validate the merged user, but write only the given fields (others may change meanwhile).
    user = User.model_validate({**(current.model_dump(by_alias=True) if current else {}),
                                **fields, "org_id": org_id, "user_id": str(user_id)})  # fmt: skip
    user.email_key = email_key(user.email, user.user_id)
    given = written(set(fields))
    now = utcnow()
    insert_only = {  # `_id` and `org_id` come from the filter
        "user_id": user.user_id,
        "created_at": now,
        "created_at_ms": to_ms(now),
        **user.storage_fields(INSERT_FIELDS - given),
    }
    update = {"$set": {**user.storage_fields(given), **stamp(now)}}
    collection = User.get_pymongo_collection()
    created = False
    # update_one, not find_one_and_update: nx-27017 ignores $setOnInsert in the latter's upserts.
    try:
        result = await collection.update_one(
            key, {**update, "$setOnInsert": insert_only}, upsert=True
        )
        created = result.upserted_id is not None
    except DuplicateKeyError:
        # Either a concurrent first write of this user won (then update it) or the email is taken.
        try:
            result = await collection.update_one(key, update)
        except DuplicateKeyError as exc:
            raise Conflict(f"email {user.email!r} is already used by another user") from exc
        if result.matched_count == 0:
            raise Conflict(f"email {user.email!r} is already used by another user") from None
    saved = await collection.find_one(key)
    return User.model_validate(saved), created


async def get_user(org_id: str, user_id: str) -> User:
    user = await User.find_one(User.key_of(org_id, str(user_id)))
    if user is None:
        raise NotFound(f"user {user_id!r} not found")
    return user


async def roles_of(org_id: str, user_ids: set[str]) -> dict[str, str]:
    """The role of each known user (unknown ones are left out)."""
    if not user_ids:
        return {}
    cursor = User.get_pymongo_collection().find(
        User.keyed(org_id, user_ids), {"user_id": 1, "role": 1}, batch_size=len(user_ids)
    )
    return {d["user_id"]: d.get("role") or "manager" async for d in cursor}
