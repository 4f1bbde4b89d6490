"""Create every collection and every declared index."""

from pymongo.asynchronous.database import AsyncDatabase

from chatadmin.indexes import ensure_indexes
from chatadmin.models import DOCUMENT_MODELS

NAME = "initial collections and indexes"


async def apply(db: AsyncDatabase) -> list[str]:
    changes: list[str] = []
    for model in DOCUMENT_MODELS:
        changes += await ensure_indexes(db, model)
    return changes
