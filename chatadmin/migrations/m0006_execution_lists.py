"""The indexes of `GET /executions`: the org's executions newest first, by thread, status or
user, or all of them (`Execution.Settings.indexes`, each leading with `org_id`).

The thread index gains the newest-first order, `(org_id, thread_id, -created_at_ms)`, and
replaces `(org_id, thread_id)`, which it covers; the old one is dropped, found by its keys
(nx-27017 lists indexes under names of its own).
"""

from pymongo.asynchronous.database import AsyncDatabase

from chatadmin.indexes import ensure_indexes
from chatadmin.models import Execution

NAME = "execution lists newest first"
REPLACED = [("org_id", 1), ("thread_id", 1)]


async def apply(db: AsyncDatabase) -> list[str]:
    changes = await ensure_indexes(db, Execution)
    coll = db[Execution.Settings.name]
    for name, spec in (await coll.index_information()).items():
        if [tuple(pair) for pair in spec["key"]] == REPLACED:
            await coll.drop_index(name)
            changes.append(f"dropped index {coll.name}.{name} [org_id, thread_id]")
    return changes
