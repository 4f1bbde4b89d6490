"""Single-field message indexes for cross-org admin lists (newest first, by thread)."""

from pymongo.asynchronous.database import AsyncDatabase

from chatadmin.indexes import ensure_indexes
from chatadmin.models import Message

NAME = "message indexes for cross-org admin lists"


async def apply(db: AsyncDatabase) -> list[str]:
    return await ensure_indexes(db, Message)
