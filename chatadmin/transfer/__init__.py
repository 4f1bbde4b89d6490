"""Import and export of conversations: the formats people have (native JSONL, the ChatGPT and
Claude account exports, OpenAI and Anthropic message lists, LibreChat, Open WebUI and seed 003's
folder of JSON files) in, and native, OpenAI, Anthropic or Markdown out; and `sync` of a folder.

Everything is streamed (never a whole file, collection or thread in memory) and every write goes
through `services.ingest`. `docs/import-export.md` has each format's mapping.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chatadmin.transfer.exporter import FORMATS as EXPORT_FORMATS
from chatadmin.transfer.exporter import ExportSummary, export
from chatadmin.transfer.formats import NAMES
from chatadmin.transfer.importer import Importer, Options, Summary
from chatadmin.transfer.reader import Source
from chatadmin.transfer.sync import SyncBusy, SyncSummary, default_state, files_of, sync_folder

IMPORT_FORMATS = ("auto", *NAMES)

__all__ = [
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "ExportSummary",
    "Importer",
    "Options",
    "Source",
    "Summary",
    "SyncBusy",
    "SyncSummary",
    "check_input",
    "check_output",
    "default_state",
    "export",
    "import_path",
    "input_files",
    "sync_folder",
]


def input_files(path: Path) -> list[Path]:
    """The files to import: the file itself, or a folder's JSON and JSONL files."""
    return files_of(path) if path.is_dir() else [path]


async def import_path(
    path: Path, options: Options, progress: Callable[[int], None] | None = None
) -> Summary:
    """Import a file, or every file of a folder, into one summary."""
    importer = Importer(options, progress)
    for file in input_files(path):
        await importer.run(Source.file(file))
    return importer.summary


def check_input(path: Path) -> tuple[list[Path], int]:
    """The files an import of `path` reads and their total size; ValueError if there are none."""
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    files = input_files(path)
    if not files:
        raise ValueError(f"{path}: no .json or .jsonl files (gzipped or not) in this folder")
    return files, sum(f.stat().st_size for f in files)


def check_output(path: Path) -> None:
    """ValueError unless an export can be written to `path`."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise ValueError(f"{path.parent}: no such folder")
