"""Around the servers a benchmark runs against, which all come from `chatadmin.testservers`
(`start_test_server` for nx-27017 or SecantusDB, `RedisServer`, `AppServer` for `manage.py
runserver`): a scratch directory, their pids, the database opened in-process, SIGTERM.

A benchmark starts its own servers on free loopback ports with throwaway storage in a scratch
directory, and stops them however it ends (also on SIGTERM, from `timeout` or a killed job).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chatadmin.db import Database
from chatadmin.embedded import ServerProcess
from chatadmin.migrations import migrate
from chatadmin.settings import Settings
from chatadmin.testservers import AppServer, start_test_server


def database_server(kind: str, data_dir: Path, *, in_memory: bool = False) -> ServerProcess:
    """A database server of `kind` with its data on disk, as in production, or (`in_memory`)
    SecantusDB's in-memory mode, which the test suite uses: it refuses writes once its 256 MB
    cache is full (WT_CACHE_FULL at about 40,000 messages). nx-27017 is always on disk."""
    return start_test_server(kind, data_dir, persistent=not in_memory)


# `AppServer` settings that raise every rate limit out of reach: a benchmark's synthetic users
# send far more than people do. The limits are still checked on every request (their cost is
# measured), they just never refuse anything.
NO_RATE_LIMITS = {
    f"CHATADMIN_RATE_{name}": "1000000000"
    for name in (
        "OWNER_PER_MINUTE",
        "LEADER_PER_MINUTE",
        "MANAGER_PER_MINUTE",
        "USER_PER_HOUR",
        "USER_PER_DAY",
        "KEY_PER_MINUTE",
    )
}


@contextlib.contextmanager
def scratch(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary work directory, removed afterwards unless `keep`."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def server_pid(server: ServerProcess | AppServer | None) -> int | None:
    """The pid of a started server process (None when it is not running)."""
    proc = getattr(server, "proc", None)
    return proc.pid if proc is not None else None


def settings_for(uri: str, db_name: str, **fields: Any) -> Settings:
    """Settings for opening a database in-process: no `.env`, debug mode, `fields` on top."""
    return Settings(
        _env_file=None,
        mongodb_uri=uri,
        mongodb_db_name=db_name,
        **{"chatadmin_debug": True, **fields},
    )


async def open_database(settings: Settings) -> Database:
    """Open the database in-process (Beanie initialised) with the product's migrations applied."""
    database = await Database.open(settings)
    await migrate(database.db)
    return database


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so that `finally` blocks stop the servers."""
    signal.signal(signal.SIGTERM, _interrupt)
