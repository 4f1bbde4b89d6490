"""Shares: a bounded public snapshot of a thread behind an unguessable id; expiry and revoke."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from pymongo import ReturnDocument

from chatadmin.clock import stamp, to_ms, utcnow
from chatadmin.exceptions import Invalid, NotFound, TooLarge
from chatadmin.models import SharedThread
from chatadmin.models.share import PublicMessage, PublicThread
from chatadmin.models.size import document_size
from chatadmin.services.messages import all_messages
from chatadmin.services.threads import get_thread

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_MESSAGES = 2000


def new_share_id() -> str:
    """32 random bytes, URL-safe (256 bits: not guessable)."""
    return secrets.token_urlsafe(32)


async def create_share(
    org_id: str,
    thread_id: str,
    *,
    expires_in_seconds: int | None = None,
    created_by: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_messages: int = DEFAULT_MAX_MESSAGES,
) -> SharedThread:
    """Snapshot a thread now; refused with TooLarge past the size or message limit."""
    if expires_in_seconds is not None and not 60 <= expires_in_seconds <= 366 * 24 * 3600:
        raise Invalid("expires_in_seconds must be between 60 and one year")
    thread = await get_thread(org_id, thread_id)
    if thread.message_count > max_messages:
        raise TooLarge(
            f"thread has {thread.message_count} messages; a share holds at most {max_messages}"
        )
    messages = await all_messages(org_id, thread.thread_id).limit(max_messages + 1).to_list()
    if len(messages) > max_messages:
        raise TooLarge(f"a share holds at most {max_messages} messages")
    snapshot: dict[str, Any] = {
        "thread": PublicThread.model_validate(thread).model_dump(),
        "messages": [PublicMessage.model_validate(m).model_dump() for m in messages],
    }
    size = document_size(snapshot)
    if size > max_bytes:
        raise TooLarge(f"thread snapshot is {size} bytes; a share holds at most {max_bytes} bytes")
    now = utcnow()
    expires = now + timedelta(seconds=expires_in_seconds) if expires_in_seconds else None
    share = SharedThread(
        org_id=org_id,
        share_id=new_share_id(),
        thread_id=thread.thread_id,
        snapshot=snapshot,
        size_bytes=size,
        created_by=created_by,
        expires_at=expires,
        expires_at_ms=to_ms(expires) if expires else 0,
    )
    await share.insert()
    return share


async def get_share(share_id: str) -> SharedThread:
    """A live share by its public id; NotFound once expired, revoked or unknown."""
    share = await SharedThread.find_one({"share_id": str(share_id)})
    if share is None or share.revoked:
        raise NotFound("share not found")
    if share.expires_at_ms and share.expires_at_ms <= to_ms(utcnow()):
        raise NotFound("share not found")
    return share


async def revoke_share(org_id: str, share_id: str) -> SharedThread:
    now = utcnow()
    doc = await SharedThread.get_pymongo_collection().find_one_and_update(
        {"org_id": org_id, "share_id": str(share_id), "revoked": False},
        {"$set": {"revoked": True, "revoked_at_ms": to_ms(now), **stamp(now)}},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None:
        raise NotFound("share not found")
    return SharedThread.model_validate(doc)
