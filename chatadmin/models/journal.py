"""`write_journal`: the writes in flight, with what their side effects touch.

A write that changes counters outside its own documents (its users' counters, the day buckets
and its threads' rollups and `next_seq`) records, before its first change, which users, days and
threads those are, and removes the record after its last (`services/effects.py`). A record left
behind belongs to a write that died half-way (a killed worker, a database gone mid-batch);
`services/repair.py` recounts what it names from the stored data once no other write of that
org is in flight.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from chatadmin.models.base import ClientId, StorageSettings, TenantDocument, index, new_id


class WriteJournal(TenantDocument):
    """One write in flight."""

    journal_id: ClientId = Field(default_factory=new_id)
    users: list[str] = Field(default_factory=list)
    threads: list[str] = Field(default_factory=list)  # whose rollups and seqs it moves
    first_day_ms: int = 0  # the earliest day whose buckets the write changes
    repair_lease_ms: int = 0  # a repair working on it until then

    RESOURCE: ClassVar[str] = "write"
    RESOURCE_KEY: ClassVar[str] = "journal_id"

    class Settings(StorageSettings):
        name = "write_journal"
        indexes = [
            index("org_id", "journal_id", unique=True, name="org_journal_uq"),
            index("org_id", "created_at_ms", name="org_created"),
            index("created_at_ms", name="created"),
        ]
