"""The journal of writes in flight, from which a write that died half-way is repaired."""

from pymongo.asynchronous.database import AsyncDatabase

from chatadmin.indexes import ensure_indexes
from chatadmin.models.journal import WriteJournal

NAME = "journal of writes in flight"


async def apply(db: AsyncDatabase) -> list[str]:
    return await ensure_indexes(db, WriteJournal)
