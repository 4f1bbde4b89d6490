"""Full-text search for the server's search mode: its indexes, and in terms mode the words of
every stored message and analysis (documents written before this migration have none)."""

from pymongo.asynchronous.database import AsyncDatabase

from chatadmin.indexes import build_search

NAME = "full-text search for the server's search mode"


async def apply(db: AsyncDatabase) -> list[str]:
    return await build_search(db)
