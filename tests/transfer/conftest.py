"""Fixtures of the import/export tests: the third-party sample files (read where they are,
beside the project, never copied into it), an import runner, and database snapshots."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from chatadmin.models import DOCUMENT_MODELS, ApiKey, AuditLog, MigrationRecord
from chatadmin.transfer import Importer, Options, Source

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("CHATADMIN_SAMPLES", ROOT.parent / "shared" / "samples" / "imports"))


def sample(folder: str, name: str) -> Path:
    """A sample file; the test is skipped when the samples are not beside the project."""
    path = SAMPLES / folder / name
    if not path.exists():
        pytest.skip(f"sample files not found at {SAMPLES} (set CHATADMIN_SAMPLES)")
    return path


def sample_files() -> list[Path]:
    if not SAMPLES.is_dir():
        return []
    return sorted(p for p in SAMPLES.glob("*/*") if p.suffix in (".json", ".jsonl"))


def source_of(source: Path | bytes | str) -> Source:
    if isinstance(source, Path):
        return Source.file(source)
    return Source.data("body", source.encode() if isinstance(source, str) else source)


async def run_import(source: Path | bytes | str, org: str = "org-a", **options):
    """Import a file (or bytes, or text) into `org`; returns the summary."""
    return await Importer(Options(org_id=org, **options)).run(source_of(source))


async def snapshot(exclude_audit: bool = False) -> dict:
    """Every document of every collection (API keys and migrations left out)."""
    skip = {ApiKey, MigrationRecord} | ({AuditLog} if exclude_audit else set())
    models = [m for m in DOCUMENT_MODELS if m not in skip]
    found = await asyncio.gather(
        *(m.get_pymongo_collection().find({}).sort("_id", 1).to_list() for m in models)
    )
    return {m.Settings.name: docs for m, docs in zip(models, found, strict=True)}
