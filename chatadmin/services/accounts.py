"""Admin users (argon2id password hashes) and API keys (stored as sha256 hashes only)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo.errors import DuplicateKeyError

from chatadmin.clock import now_ms, stamp
from chatadmin.exceptions import Conflict, Invalid
from chatadmin.models import AdminUser, ApiKey
from chatadmin.models.admin_user import ADMIN_ROLES, SCOPES

MIN_PASSWORD_LENGTH = 10
KEY_PREFIX = "ca"
_hasher = PasswordHasher()  # argon2id with the library's recommended parameters


def check_password(password: str) -> None:
    """Refuse a password too short to keep (Invalid)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password must be at least {MIN_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def create_admin_user(
    username: str, password: str, role: str, org_id: str | None = None
) -> AdminUser:
    if role not in ADMIN_ROLES:
        raise Invalid(f"role must be one of {', '.join(ADMIN_ROLES)}")
    check_password(password)
    user = AdminUser(
        username=username, password_hash=hash_password(password), role=role, org_id=org_id or None
    )
    try:
        await user.insert()
    except DuplicateKeyError as exc:
        raise Conflict(f"admin user {username!r} already exists") from exc
    return user


async def authenticate_admin(username: str, password: str) -> AdminUser | None:
    """The active admin user with this password, or None (same cost either way)."""
    user = await AdminUser.find_one({"username": str(username)})
    if user is None:
        _hasher.hash(password)  # spend the same time as a real check
        return None
    if not user.is_active or not verify_password(user.password_hash, password):
        return None
    await AdminUser.get_pymongo_collection().update_one(
        {"_id": user.id}, {"$set": {"last_login_at_ms": now_ms(), **stamp()}}
    )
    return user


_CACHE_SECONDS = 5.0
_loaded: dict[str, tuple[AdminUser | None, float]] = {}


async def load_admin(admin_id: str) -> AdminUser | None:
    """The admin user behind a session, cached for a few seconds (read on every page)."""
    hit = _loaded.get(admin_id)
    now = time.monotonic()
    if hit and hit[1] > now:
        return hit[0]
    user = await AdminUser.find_one({"_id": str(admin_id)})
    if len(_loaded) > 1000:
        _loaded.clear()
    _loaded[admin_id] = (user, now + _CACHE_SECONDS)
    return user


async def end_sessions(admin_id: str) -> None:
    """End every session of an admin user, in every browser (other app processes notice
    within the few seconds of their cache)."""
    _loaded.pop(str(admin_id), None)
    await AdminUser.get_pymongo_collection().update_one(
        {"_id": str(admin_id)}, {"$inc": {"session_generation": 1}, "$set": stamp()}
    )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_api_key(
    org_id: str, scopes: list[str], name: str = "", created_by: str | None = None
) -> tuple[ApiKey, str]:
    """A new key; the plaintext `ca_<key_id>_<secret>` is returned once and never stored."""
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise Invalid(f"scopes must be a non-empty subset of {', '.join(SCOPES)}")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    plaintext = f"{KEY_PREFIX}_{key_id}_{secret}"
    key = ApiKey(
        key_id=key_id,
        org_id=org_id,
        name=name,
        key_hash=_digest(plaintext),
        scopes=sorted(set(scopes), key=SCOPES.index),
        created_by=created_by,
    )
    await key.insert()
    return key, plaintext


async def verify_api_key(plaintext: str) -> ApiKey | None:
    """The live key for this plaintext (recording its use), or None."""
    parts = plaintext.split("_", 2) if isinstance(plaintext, str) else []
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(plaintext) > 200:
        return None
    key = await ApiKey.find_one({"key_id": parts[1]})
    if key is None or key.revoked or not hmac.compare_digest(key.key_hash, _digest(plaintext)):
        return None
    now = now_ms()
    await ApiKey.get_pymongo_collection().update_one(
        {"_id": key.id}, {"$set": {"last_used_at_ms": now}}
    )
    key.last_used_at_ms = now
    return key


async def revoke_api_key(key_id: str) -> bool:
    result = await ApiKey.get_pymongo_collection().update_one(
        {"key_id": str(key_id), "revoked": False}, {"$set": {"revoked": True, **stamp()}}
    )
    return result.modified_count == 1
