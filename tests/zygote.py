"""`manage.py` in a real child process, without paying Python's start-up and chatadmin's imports
(about a second) for each of the suite's ~100 commands: a server that has imported
`chatadmin.cli` once forks a child per command; the child takes the command's environment,
working directory, stdin, stdout and stderr (files, on fds 0-2) and runs `cli.main` as
`manage.py` does, then exits with its code. What the tests see is a process's exit code and
output, as from `subprocess.run`.

The server holds no threads, event loops or clients when it forks. `python -m tests.zygote
SOCKET` serves; `Zygote` starts one and runs commands through it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANAGE = str(ROOT / "manage.py")


def serve(path: str) -> None:
    """Accept a command per connection and fork a child for it, until killed."""
    import chatadmin.cli  # noqa: F401  (what every child would import: imported once, here)

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            _child(conn)
        conn.close()


def _child(conn: socket.socket) -> None:
    """Run one command in this forked child; never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    stream = conn.makefile("rwb")
    job = json.loads(stream.readline())
    stream.write(json.dumps({"pid": os.getpid()}).encode() + b"\n")
    stream.flush()
    code = 1
    try:
        os.chdir(job["cwd"])
        os.environ.clear()
        os.environ.update(job["env"])
        for fd, name, mode in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_WRONLY),
                               (2, "stderr", os.O_WRONLY)):  # fmt: skip
            opened = os.open(job[name], mode)
            os.dup2(opened, fd)
            os.close(opened)
        sys.stdin = open(0, encoding="utf-8", closefd=False)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
        sys.argv = [MANAGE, *job["args"]]
        from chatadmin.cli import main

        try:
            code = main()
        except SystemExit as exc:  # argparse's usage errors and --help
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # what the interpreter would print for an uncaught exception
            import traceback

            traceback.print_exc()
            code = 1
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        stream.write(json.dumps({"returncode": code}).encode() + b"\n")
        stream.flush()
    finally:
        os._exit(code if isinstance(code, int) else 1)


class Zygote:
    """A running server and the commands run through it."""

    def __init__(self, workdir: Path) -> None:
        self.path = str(workdir / "zygote.sock")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "CHATADMIN_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.zygote", self.path], cwd=ROOT, env=env
        )
        deadline = time.monotonic() + 60
        while not os.path.exists(self.path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the command server did not start")
            time.sleep(0.05)

    def run(
        self, args: list[str], *, env: dict, cwd: Path, input: str | None, timeout: float
    ) -> subprocess.CompletedProcess:
        """Run `manage.py ARGS` in a forked child, as `subprocess.run(capture_output=True,
        text=True)` would (raises `subprocess.TimeoutExpired` after killing it)."""
        run_id = f"{os.getpid()}-{time.monotonic_ns()}"
        files = {name: cwd / f".zygote-{run_id}.{name}" for name in ("stdin", "stdout", "stderr")}
        files["stdin"].write_text(input or "", encoding="utf-8")
        for name in ("stdout", "stderr"):
            files[name].touch()
        job = {"args": args, "env": env, "cwd": str(cwd)} | {k: str(p) for k, p in files.items()}
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(self.path)
                conn.settimeout(timeout)
                stream = conn.makefile("rwb")
                stream.write(json.dumps(job).encode() + b"\n")
                stream.flush()
                pid = json.loads(stream.readline())["pid"]
                try:
                    line = stream.readline()
                except TimeoutError:
                    os.kill(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired([MANAGE, *args], timeout) from None
            # No answer: the child died without running its `finally` (killed, say).
            code = json.loads(line)["returncode"] if line else -signal.SIGKILL
            out, err = (files[n].read_text(encoding="utf-8") for n in ("stdout", "stderr"))
        finally:
            for path in files.values():
                path.unlink(missing_ok=True)
        return subprocess.CompletedProcess([MANAGE, *args], code, out, err)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


if __name__ == "__main__":
    serve(sys.argv[1])
