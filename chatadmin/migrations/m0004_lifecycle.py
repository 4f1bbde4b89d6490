"""The lifecycle's collections: retention runs and the month buckets that folding leaves."""

from pymongo.asynchronous.database import AsyncDatabase

from chatadmin.indexes import ensure_indexes
from chatadmin.models import MonthlyAnalytics, RetentionRun

NAME = "retention runs and folded month buckets"


async def apply(db: AsyncDatabase) -> list[str]:
    return await ensure_indexes(db, RetentionRun) + await ensure_indexes(db, MonthlyAnalytics)
