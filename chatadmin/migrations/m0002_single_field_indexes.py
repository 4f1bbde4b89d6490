"""Single-field indexes: cross-org admin lists of messages, and batch lookups by client id."""

from pymongo.asynchronous.database import AsyncDatabase

from chatadmin.indexes import ensure_indexes
from chatadmin.models import Message, Thread

NAME = "single-field indexes for cross-org lists and id lookups"


async def apply(db: AsyncDatabase) -> list[str]:
    return await ensure_indexes(db, Message) + await ensure_indexes(db, Thread)
