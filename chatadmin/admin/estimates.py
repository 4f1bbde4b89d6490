"""Estimated collection sizes for unfiltered list pages and the dashboard.

MongoDB answers `estimatedDocumentCount` from its metadata, at the same cost at any size;
nx-27017 counts the rows (50 ms at a million messages), which would make every unfiltered list
page slower as the collection grows. So each process remembers a large collection's estimate
for `MAX_AGE_S`: the figure shown is at most that old. Small collections are counted each time
(cheap, and exact while a deployment is small).
"""

from __future__ import annotations

import time

from pymongo.asynchronous.collection import AsyncCollection

MAX_AGE_S = 30.0
REMEMBER_FROM = 10_000  # documents: below this the count is cheap on every server

_known: dict[tuple[str, str], tuple[float, int]] = {}


async def estimated_count(coll: AsyncCollection) -> int:
    """The collection's estimated size, remembered for a while once it is large."""
    key = (coll.database.name, coll.name)
    now = time.monotonic()
    seen = _known.get(key)
    if seen is not None and now - seen[0] < MAX_AGE_S:
        return seen[1]
    count = await coll.estimated_document_count()
    if count >= REMEMBER_FROM:
        _known[key] = (now, count)
    else:
        _known.pop(key, None)
    return count
