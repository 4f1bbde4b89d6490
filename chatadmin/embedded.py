"""The embedded MongoDB default: an nx-27017 child process on a free loopback port.

With `MONGODB_URI` unset the app and the CLI start one of these, wait until it answers `ping`,
and stop it on exit. Data lives in `--data-dir` (one SQLite file per database, so dropping one
database never touches another). `ServerProcess` is the machinery shared with the other servers
the test suite can run on (`chatadmin.testservers`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

log = logging.getLogger("chatadmin.embedded")


NX_MAIN = "import sys; from nx_27017.nx_27017 import main; sys.exit(main())"


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A MongoDB wire-protocol server run as our child process on a free loopback port.

    Subclasses say how to start one (`command`); this class starts it in its own process group,
    waits until it answers `ping` (retrying on another port if the first was taken meanwhile),
    and stops it by its pid, never a process it did not start.
    """

    name = "server"

    def __init__(self, data_dir: str | Path, port: int | None = None, host: str = "127.0.0.1"):
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    def command(self, port: int) -> list[str]:
        """The argv that starts the server on `port`."""
        raise NotImplementedError

    def started(self) -> None:
        """Called once the server answers ping."""

    def private(self) -> None:
        """The data dir readable by its owner only (it holds password and API-key hashes):
        0700 for directories, 0600 for files, also for files an older version left."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        for path in self.data_dir.rglob("*"):
            with contextlib.suppress(OSError):
                path.chmod(0o700 if path.is_dir() else 0o600)

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """Start the server and block until it answers `ping`."""
        self.private()
        last_error = ""
        for _attempt in range(3):
            port = self.port or free_port()
            out = open(
                os.open(
                    self.run_dir / f"{self.name}.out", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
                ),
                "ab",
            )
            self.proc = subprocess.Popen(
                self.command(port), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, umask=0o077,
            )  # fmt: skip
            out.close()
            self.port = port
            if self._wait_ready(timeout):
                atexit.register(self.stop)
                self.started()
                log.debug("started %s at %s, data in %s", self.name, self.uri, self.data_dir)
                return self
            last_error = f"exit code {self.proc.poll()}"
            self.stop()
            self.port = None if self.port == port else self.port
        raise EmbeddedServerError(
            f"{self.name} did not answer ping ({last_error}); "
            f"see {self.run_dir / f'{self.name}.out'}"
        )

    def _ping(self, timeout: float = 0.5) -> bool:
        try:
            with MongoClient(self.uri, serverSelectionTimeoutMS=int(timeout * 1000)) as client:
                client.admin.command("ping")
                return True
        except PyMongoError:
            return False

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            if self._ping():
                return True
            time.sleep(0.1)
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stopping(self, proc: subprocess.Popen) -> None:
        """Called before a started process is signalled."""

    def stop(self) -> None:
        """Stop the process we started (SIGTERM, then SIGKILL after 10 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        self.stopping(proc)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class EmbeddedMongo(ServerProcess):
    """The embedded nx-27017, its data in `--data-dir`; CLI commands attach to a running one."""

    name = "nx-27017"

    def __init__(self, data_dir: str | Path, port: int | None = None, host: str = "127.0.0.1"):
        super().__init__(data_dir, port, host)
        self.attached = False

    @property
    def state_file(self) -> Path:
        return self.run_dir / "server.json"

    def attach(self) -> bool:
        """Use a server that another process of ours already runs on this data dir, if any.

        Two servers must never open the same SQLite files, so a CLI command run beside
        `runserver` talks to the running server instead of starting its own.
        """
        try:
            state = json.loads(self.state_file.read_text())
            os.kill(int(state["pid"]), 0)
        except (OSError, ValueError, KeyError, TypeError):
            return False
        self.port = int(state["port"])
        if not self._ping(timeout=2.0):
            self.port = None
            return False
        self.attached = True
        log.debug("attached to the running nx-27017 at %s", self.uri)
        return True

    def command(self, port: int) -> list[str]:
        (self.data_dir / "db").mkdir(mode=0o700, parents=True, exist_ok=True)
        return [
            sys.executable, "-c", NX_MAIN,
            "--data-dir", str(self.data_dir / "db"),
            "--host", self.host,
            "-p", str(port),
            "--log-file", str(self.run_dir / "nx-27017.log"),
            "--pid-file", str(self.run_dir / f"nx-27017-{port}.pid"),
        ]  # fmt: skip

    def start(self, timeout: float = 30.0, reuse: bool = True) -> EmbeddedMongo:
        """Start the server (or attach to ours) and block until it answers `ping`."""
        self.private()
        if reuse and self.attach():
            return self
        super().start(timeout)
        return self

    def started(self) -> None:
        self.state_file.write_text(json.dumps({"pid": self.proc.pid, "port": self.port}))
        self.state_file.chmod(0o600)

    def stopping(self, proc: subprocess.Popen) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if json.loads(self.state_file.read_text()).get("pid") == proc.pid:
                self.state_file.unlink()
