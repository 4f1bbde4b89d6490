"""The MongoDB wire-protocol servers the test suite and the benchmarks can run on.

No real MongoDB can be installed where chatadmin is built, so the suite runs twice: on nx-27017
(the embedded default, over SQLite) and on SecantusDB (over WiredTiger, MongoDB's own storage
engine). `CHATADMIN_TEST_SERVER` picks one; `start_test_server()` starts it on a free port with
throwaway storage. `RedisServer` and `AppServer` (`manage.py runserver`, one or more workers)
are the other real processes the tests and benchmarks run against. SecantusDB is a test
dependency: its `secantusd-py` is looked up next to the running Python, and nothing here
imports it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from chatadmin.embedded import EmbeddedMongo, EmbeddedServerError, ServerProcess, free_port

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


class RedisServer:
    """A `redis-server` child process on a loopback port that keeps nothing on disk; it can be
    stopped, killed and started again on the same port (outage scenarios)."""

    def __init__(self, workdir: str | Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> RedisServer:
        """Start the server (on its port, again after a stop) and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise EmbeddedServerError("redis-server is not installed (make test installs it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if _redis_answers(self.port):
                atexit.register(self.stop)
                return self
            time.sleep(0.02)
        self.stop()
        raise EmbeddedServerError(f"redis-server did not start on port {self.port}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the server (SIGKILL by default: gone at once, as in a crash)."""
        if self.alive():
            os.kill(self.proc.pid, sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait(10)
                self.proc = None

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


ROOT = Path(__file__).resolve().parent.parent


class AppServer:
    """`manage.py runserver` as its users run it, in its own process group on a free loopback
    port, against the given MongoDB and Redis, with a data dir and a database of its own.

    `env` adds or overrides settings (`None` removes one). The environment of the calling
    process is inherited except its `MONGODB_*` and `CHATADMIN_*` settings.
    """

    def __init__(
        self,
        mongodb_uri: str,
        db_name: str,
        workdir: str | Path,
        *,
        redis_url: str | None = None,
        workers: int = 1,
        env: dict[str, str | None] | None = None,
        port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workers = workers
        self.port = port or free_port()
        self.db_name = db_name
        self.log_path = self.workdir / "runserver.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "CHATADMIN_"))}
        merged: dict[str, str | None] = {
            **base,
            "MONGODB_URI": mongodb_uri,
            "MONGODB_DB_NAME": db_name,
            "REDIS_URL": redis_url,
            "CHATADMIN_DATA_DIR": str(self.workdir / "data"),
            "CHATADMIN_SECRET_KEY": "app-server-secret-0123456789abcdef",
            "CHATADMIN_AUTO_MIGRATE": "1",
            "CHATADMIN_LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        self.env = {k: v for k, v in merged.items() if v is not None}
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str, input: str | None = None, timeout: float = 120):
        """Run a `manage.py` command with this server's settings."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args], env=self.env, cwd=self.workdir,
            input=input, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def spawn(self, *args: str, stdin: bool = False) -> subprocess.Popen:
        """Start a `manage.py` command with this server's settings without waiting (text pipes)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *args], env=self.env, cwd=self.workdir,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def create_api_key(self, org: str, scopes: str = "ingest,read,share,admin") -> str:
        """A new API key for `org` (through `manage.py createapikey`)."""
        made = self.manage("createapikey", "--org", org, "--scopes", scopes)
        if made.returncode != 0:
            raise EmbeddedServerError(f"createapikey failed: {made.stderr or made.stdout}")
        return made.stdout.strip().splitlines()[-1]

    def start(self, timeout: float = 60.0) -> AppServer:
        """Start the server and wait until every worker answers `/healthz`."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "runserver", "--port", str(self.port),
                 "--workers", str(self.workers)],
                env=self.env, cwd=self.workdir, stdout=log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        atexit.register(self.stop)
        if not self.wait_workers(timeout):
            self.stop()
            raise EmbeddedServerError(f"runserver did not come up: {self.log()[-3000:]}")
        return self

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes] | None:
        """One GET of `path` on a new connection: (status, body), or None if it failed."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.settimeout(timeout)
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            return int(head.split(b" ", 2)[1]), body
        except (OSError, ValueError, IndexError):
            return None

    def healthz_pid(self, timeout: float = 2.0) -> int | None:
        """The pid of the worker that answered one `/healthz` on a new connection, or None."""
        got = self.get("/healthz", timeout)
        try:
            return int(json.loads(got[1])["pid"]) if got and got[0] == 200 else None
        except (ValueError, KeyError, TypeError):
            return None

    def wait_workers(self, timeout: float = 60.0) -> bool:
        """Wait until `workers` distinct processes answer `/healthz`."""
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            pid = self.healthz_pid()
            if pid is None:
                time.sleep(0.1)
                continue
            seen.add(pid)
            alive = {p for p in seen if _pid_alive(p)}
            seen = alive
            if len(seen) >= self.workers:
                return True
        return False

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Wait until `/readyz` answers 200 (MongoDB and Redis answer) while the server runs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            got = self.get("/readyz")
            if got and got[0] == 200:
                return True
            time.sleep(0.1)
        return False

    def worker_pids(self) -> list[int]:
        """The worker processes serving requests (the server itself with one worker)."""
        if self.proc is None:
            return []
        if self.workers == 1:
            return [self.proc.pid]
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            pids = [int(p) for p in children.read_text().split()]
        except OSError:
            return []
        # uvicorn's supervisor also starts a resource tracker: the workers are its spawns.
        return [p for p in pids if "spawn_main" in _cmdline(p)]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (SIGKILL: every worker dies at once, as in a crash)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            if sig == signal.SIGKILL:
                self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the process group (a graceful shutdown), SIGKILL if it does not end."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGUSR1)  # the stuck workers' stacks, to the log
                time.sleep(1)
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
