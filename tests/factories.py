"""Test data built through the services (never by writing Documents directly), so every
fixture holds what a real client could have written."""

from __future__ import annotations

from typing import Any

from chatadmin.models import Message, Thread, User
from chatadmin.services import messages, threads, users


async def make_user(org_id: str, user_id: str, **fields: Any) -> User:
    """A user, created or updated through the users service."""
    fields.setdefault("username", user_id)
    user, _created = await users.upsert_user(org_id, user_id, **fields)
    return user


async def make_thread(org_id: str, user_id: str, thread_id: str, **fields: Any) -> Thread:
    """A thread of a (new or existing) user."""
    await make_user(org_id, user_id)
    return await threads.create_thread(org_id, user_id, thread_id=thread_id, **fields)


async def make_messages(thread: Thread, count: int, **fields: Any) -> list[Message]:
    """`count` messages appended to the thread, alternating user and assistant."""
    made = []
    for i in range(count):
        made.append(
            await messages.append_message(
                thread.org_id,
                thread.thread_id,
                role="user" if i % 2 == 0 else "assistant",
                content=fields.get("content", f"message {i}"),
                ai_metadata=fields.get("ai_metadata"),
            )
        )
    return made
