"""The MongoDB wire-protocol servers the test suite and the benchmarks can run on.

No real MongoDB can be installed where chatadmin is built, so the suite runs twice: on nx-27017
(the embedded default, over SQLite) and on SecantusDB (over WiredTiger, MongoDB's own storage
engine). `CHATADMIN_TEST_SERVER` picks one; `start_test_server()` starts it on a free port with
throwaway storage. SecantusDB is a test dependency: its `secantusd-py` is looked up next to the
running Python, and nothing here imports it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from chatadmin.embedded import EmbeddedMongo, EmbeddedServerError, ServerProcess

NX = "nx-27017"
SECANTUS = "secantusdb"
TEST_SERVERS = (NX, SECANTUS)
ENV_VAR = "CHATADMIN_TEST_SERVER"


class SecantusServer(ServerProcess):
    """A `secantusd-py` child process; `memory=True` keeps its store in a throwaway directory."""

    name = "secantusdb"

    def __init__(
        self,
        data_dir: str | Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        memory: bool = False,
        sync_on_commit: bool = False,
    ):
        super().__init__(data_dir, port, host)
        self.memory = memory
        self.sync_on_commit = sync_on_commit

    def command(self, port: int) -> list[str]:
        storage = ":memory:" if self.memory else str(self.data_dir / "wt")
        args = [
            secantus_binary(),
            "--host", self.host,
            "--port", str(port),
            "--storage-path", storage,
            "--log-level", "WARNING",
            "--cache-size", "256M",
        ]  # fmt: skip
        if self.sync_on_commit:
            args.append("--sync-on-commit")
        return args

    def start(self, timeout: float = 60.0) -> SecantusServer:
        super().start(timeout)
        return self


def secantus_binary() -> str:
    """`secantusd-py` of this environment (beside the interpreter), else from PATH."""
    beside = Path(sys.executable).with_name("secantusd-py")
    if beside.exists():
        return str(beside)
    found = shutil.which("secantusd-py")
    if found is None:
        raise EmbeddedServerError(
            "secantusd-py is not installed: install the test dependencies (make test does)"
        )
    return found


def selected_server() -> str:
    """The server named by `CHATADMIN_TEST_SERVER` (default nx-27017)."""
    kind = os.environ.get(ENV_VAR, NX).strip() or NX
    if kind not in TEST_SERVERS:
        raise EmbeddedServerError(
            f"{ENV_VAR} must be one of {', '.join(TEST_SERVERS)}, not {kind!r}"
        )
    return kind


def make_test_server(
    kind: str, data_dir: str | Path, port: int | None = None, *, persistent: bool = False
) -> ServerProcess:
    """A server of `kind` (not started); `persistent` keeps its data across a restart."""
    if kind == NX:
        return EmbeddedMongo(data_dir, port=port)
    if kind == SECANTUS:
        return SecantusServer(data_dir, port=port, memory=not persistent)
    raise EmbeddedServerError(f"unknown test server {kind!r}")


def start_test_server(
    kind: str, data_dir: str | Path, port: int | None = None, *, persistent: bool = False
) -> ServerProcess:
    """Start a server of `kind` on a free port (or `port`) and wait until it answers."""
    server = make_test_server(kind, data_dir, port, persistent=persistent)
    if isinstance(server, EmbeddedMongo):
        return server.start(reuse=False)
    return server.start()
