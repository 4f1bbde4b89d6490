"""`manage.py check`: connectivity, migration state and index drift, as a list of findings."""

from __future__ import annotations

from dataclasses import dataclass

from chatadmin import search
from chatadmin.db import Database
from chatadmin.indexes import index_drift
from chatadmin.migrations import states
from chatadmin.models import DOCUMENT_MODELS


@dataclass
class Finding:
    """One line of the report; `problem` findings make the check fail."""

    subject: str
    message: str
    problem: bool = False


async def run_checks(database: Database) -> list[Finding]:
    findings = []
    info = await database.ping()
    findings.append(Finding("database", f"{info.label()} answers ping (db {database.db.name!r})"))
    findings.append(Finding("search", f"mode {search.describe(database.search_mode)}"))
    for state in await states():
        if state.status == "completed":
            findings.append(Finding("migrations", f"{state.version} {state.name}: applied"))
        else:
            findings.append(
                Finding("migrations", f"{state.version} {state.name}: {state.status}", True)
            )
    for model in DOCUMENT_MODELS:
        drift = await index_drift(database.db, model, info)
        name = drift.collection
        if drift.collection_missing:
            findings.append(Finding(name, "collection does not exist", True))
        for desc in drift.missing:
            findings.append(Finding(name, f"missing index {desc}", True))
        for desc in drift.extra:
            findings.append(Finding(name, f"undeclared index {desc}", True))
        for desc in drift.unverifiable:
            findings.append(Finding(name, f"text index {desc} not listed by {info.kind}"))
        if drift.ok:
            findings.append(Finding(name, "indexes match the declaration"))
    return findings
