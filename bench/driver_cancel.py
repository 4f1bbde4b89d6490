#!/usr/bin/env python3
"""Whether cancelling PyMongo operations wedges the async client (docs/mongo-compat.md, "The
driver"): the frozen-database fault of `bench/reliability.py`, on a bare client.

A durable database server, one `AsyncMongoClient` with the app's timeouts (2 s, as the short
reliability run: `CHATADMIN_MONGO_TIMEOUT_MS` = deadline / 6), 8 writers of 50-document
`insert_many` batches and 4 pingers (as `/readyz` under a poll) that bound each ping to 2 s:

- `--mode cancel`: with `asyncio.wait_for` (what `/readyz` did);
- `--mode within`: with `chatadmin.db.within` (what it does now: the ping is never cancelled).

Each cycle kills the server with -9, restarts it on its port, then stops it with SIGSTOP for
14 s and continues it; the client must then answer a ping (bounded as `--mode` says, every
0.2 s) within 20 s. A client that does not
is wedged: the script prints its topology, the "Lock is not acquired" errors its pingers met,
and the tasks of the wedge (where each waits), and stops.

    .venv/bin/python bench/driver_cancel.py --mode cancel --cycles 12
    .venv/bin/python bench/driver_cancel.py --mode within --cycles 12
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common.report import say  # noqa: E402
from bench.common.servers import scratch  # noqa: E402
from bench.reliability import database_server  # noqa: E402
from chatadmin import taskdump  # noqa: E402
from chatadmin.db import make_client, within  # noqa: E402

TIMEOUT_MS = 2000
RECOVERY_S = 20.0


async def bounded(mode: str, operation, seconds: float):
    """`operation` bounded the way `--mode` says."""
    if mode == "cancel":
        return await asyncio.wait_for(operation, seconds)
    return await within(operation, seconds)


async def run(args: argparse.Namespace, work: Path) -> int:
    server = database_server(args.server, work / "db", None, True)
    port = int(server.uri.rsplit(":", 1)[1].split("/")[0])
    client = make_client(server.uri, reply_timeout_ms=TIMEOUT_MS, pool_size=32)
    items = client.bench.items
    errors: Counter[str] = Counter()
    stopping = False

    async def writer() -> None:
        while not stopping:
            batch = [{"_id": uuid.uuid4().hex, "pad": "x" * 2000} for _ in range(50)]
            try:
                await items.insert_many(batch)
                errors["writes ok"] += 1
            except Exception as exc:  # counted: what the writers met during the faults
                errors[f"write {type(exc).__name__}"] += 1
                await asyncio.sleep(0.05)

    async def pinger() -> None:
        while not stopping:
            try:
                await bounded(args.mode, client.admin.command("ping"), TIMEOUT_MS / 1000)
                errors["pings ok"] += 1
            except Exception as exc:  # counted; RuntimeError is the driver's lost lock
                errors[f"ping {type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(writer()) for _ in range(8)]
    tasks += [asyncio.create_task(pinger()) for _ in range(4)]
    try:
        for cycle in range(1, args.cycles + 1):
            await asyncio.sleep(2)
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()
            await asyncio.sleep(2)
            server = await asyncio.to_thread(database_server, args.server, work / "db", port, True)
            await asyncio.sleep(2)
            os.killpg(server.proc.pid, signal.SIGSTOP)
            await asyncio.sleep(14)
            os.killpg(server.proc.pid, signal.SIGCONT)
            started = time.monotonic()
            while True:
                try:
                    # polled as /readyz is polled then, bounded the way --mode says
                    await bounded(args.mode, client.admin.command("ping"), TIMEOUT_MS / 1000)
                    break
                except Exception:  # not yet: the client has RECOVERY_S
                    if time.monotonic() - started > RECOVERY_S:
                        say(f"cycle {cycle}: WEDGED, no answer {RECOVERY_S:.0f} s after SIGCONT")
                        say(f"  errors so far: {dict(errors)}")
                        say(f"  {client.topology_description}")
                        taskdump.dump(sys.stdout)
                        return 1
                    await asyncio.sleep(0.2)
            say(f"cycle {cycle}: answered {time.monotonic() - started:.1f} s after SIGCONT; "
                f"lock errors so far: {errors['ping RuntimeError']}")  # fmt: skip
        say(f"{args.mode}: {args.cycles} of {args.cycles} cycles recovered; {dict(errors)}")
        return 0
    finally:
        stopping = True
        for task in tasks:
            task.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGCONT)
        server.stop()
        if stuck:  # tasks of a wedged client never end, nor would its close(): leave at once
            shutil.rmtree(work, ignore_errors=True)
            sys.stdout.flush()
            os._exit(1)
        await client.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("cancel", "within"), default="within")
    ap.add_argument("--cycles", type=int, default=12, help="kill/restart/freeze cycles (12)")
    ap.add_argument("--server", default="secantusdb", help="the database server (secantusdb)")
    args = ap.parse_args(argv)
    with scratch("driver-cancel-") as work:
        return asyncio.run(run(args, work))


if __name__ == "__main__":
    sys.exit(main())
