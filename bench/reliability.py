#!/usr/bin/env python3
"""Reliability suite (issue 11): the app as its users run it, `manage.py runserver --workers 2`
on a real MongoDB wire-protocol server and a real `redis-server`, over real sockets, under a
load of message events with retries, while things break. Each scenario counts what was sent,
acknowledged and stored, checks every thread's seqs and counters and the day buckets, and fails
on any difference, on a 5xx other than 503, and on any request past its deadline.

Why: the ingest path promises exactly-once storage with gap-free seqs and counters in step
under retries, concurrent writers and outages (README "JSON API", `docs/lifecycle.md` "The
durable spool", `docs/realtime.md` "When Redis is down"). Those promises matter when processes
die in the middle of a write, so this suite kills them there.

Scenarios (`--scenarios`, comma-separated, all by default):

  load         N message events from --clients concurrent clients in batches of 50-500 (a few
               hot threads get writers from many batches at once), random client timeouts and
               resends of whole batches, events duplicated across batches
  worker-kill  the same load, with kill -9 of an app worker (twice; uvicorn starts another)
  redis        the same load, with Redis killed and started again: ingest goes on, rate limits
               fail open, real-time endpoints answer 503, and all recovers without a restart
  bad-input    the same load, with the hostile corpus of tests/contracts/test_hostile.py
               (imported) sent beside it, and events of an unknown type in the batches
  database     the same load, with kill -9 of the database server (restarted on its port),
               then SIGSTOP for longer than a request's deadline, then SIGCONT

They run in that order, each in an org of its own, on one stack started here: a durable
database server of the kind `--server` names (SecantusDB with `--sync-on-commit`, so that a
kill -9 loses nothing it acknowledged), a `redis-server`, and the app. Every request, wait and
poll has a deadline; a scenario has a hard time limit. Faults are timed by a gate on the load
(`Gate`), so that each meets requests in flight whatever the size of the run.

Rate limits: the load's users have the role `owner`, and the owner, hour, day and API-key limits
are raised for the load (`LOAD_ENV`); the manager limit stays at its default 50 a minute, which
the redis scenario's probe user (a manager) runs into. The Redis client timeout is 2 s instead of
100 ms, so that a busy 2-core machine does not trip the circuit breaker with Redis up.

    .venv/bin/python bench/reliability.py --messages 100000 --clients 32 --server nx-27017

`tests/e2e/test_reliability.py` runs the same scenarios (imported from here) with small counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import types
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/reliability.py` from a checkout
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from pymongo import MongoClient  # noqa: E402

from bench.common import report as rep  # noqa: E402
from bench.common.cli import add_run_args, run_main  # noqa: E402
from bench.common.servers import scratch  # noqa: E402
from chatadmin.embedded import ServerProcess  # noqa: E402
from chatadmin.services import repair  # noqa: E402
from chatadmin.settings import Settings  # noqa: E402
from chatadmin.testservers import (  # noqa: E402
    NX,
    SECANTUS,
    TEST_SERVERS,
    AppServer,
    RedisServer,
    SecantusServer,
    start_test_server,
)

DB_NAME = "reliability"
API = "/api/v1"
DAY_MS = 86_400_000
PROBE_USER, PROBE_THREAD = "probe-manager", "probe-thread"
MANAGER_PER_MINUTE = Settings.model_fields["chatadmin_rate_manager_per_minute"].default
HIGH = str(10**9)
LOAD_ENV = {
    "CHATADMIN_RATE_OWNER_PER_MINUTE": HIGH,
    "CHATADMIN_RATE_USER_PER_HOUR": HIGH,
    "CHATADMIN_RATE_USER_PER_DAY": HIGH,
    "CHATADMIN_RATE_KEY_PER_MINUTE": HIGH,
    "CHATADMIN_REDIS_TIMEOUT_MS": "2000",
}
ACKS = ("created", "unchanged", "accepted")


class ScenarioError(RuntimeError):
    """A scenario could not be set up (not a finding: the run itself failed)."""


# -- options --------------------------------------------------------------------------------------


@dataclass
class Options:
    """How big a run is, how hard its clients push, and how long its faults last."""

    server: str = NX
    messages: int = 100_000
    clients: int = 32
    batch: tuple[int, int] = (50, 500)
    deadline_s: float = 60.0  # a request unanswered after this has hung (the client gives up)
    outage_s: float = 5.0  # how long the database (after kill -9) and Redis stay down
    kills: int = 2  # app workers killed in the worker-kill scenario
    duplicate_rate: float = 0.2  # batches that also carry events of other batches
    short_timeout_rate: float = 0.1  # attempts sent with a client timeout of 0.05-1 s
    resend_rate: float = 0.05  # acknowledged batches sent once more
    hostile_step: int = 1  # every n-th case of the hostile corpus (1: all of it)
    time_limit_s: float | None = None  # a scenario's hard limit (default from --messages)
    seed: int = 11

    @property
    def threads(self) -> int:
        """Threads of a load: about 100 messages each."""
        return max(8, self.messages // 100)

    @property
    def limit_s(self) -> float:
        """A scenario's hard time limit."""
        return self.time_limit_s or 300 + self.messages / 25


# -- servers --------------------------------------------------------------------------------------


def database_server(kind: str, data_dir: Path, port: int | None, durable: bool) -> ServerProcess:
    """Start a server of `kind`; `durable` keeps acknowledged writes through a kill -9."""
    if durable and kind == SECANTUS:
        return SecantusServer(data_dir, port, sync_on_commit=True).start()
    return start_test_server(kind, data_dir, port, persistent=durable)


MAKE_KEYS = """
import asyncio, json, sys
from chatadmin.db import open_database
from chatadmin.services import accounts
from chatadmin.settings import Settings

async def main(wanted):
    made = {}
    async with open_database(Settings()):
        for name, (org, scopes) in wanted.items():
            key, made[name] = await accounts.create_api_key(org, scopes.split(","), name)
            if name.endswith(":revoked"):
                await accounts.revoke_api_key(key.key_id)
    print(json.dumps(made))

asyncio.run(main(json.loads(sys.argv[1])))
"""


class Stack:
    """The database, Redis and `runserver --workers 2` of a run, started and stopped here.
    `durable`: the database keeps what it acknowledged through a kill -9 (the database
    scenario needs it; it costs the others nothing measurable). `deadline_s`: how long clients
    wait for an answer; the app's database timeout is set to a sixth of it (a request's worst
    case is a few of them, up to five seen, `chatadmin.db.make_client`), so the app answers in
    time, and a write in flight for longer than `deadline_s` counts as dead for the app's
    repairer (which looks every second instead of every 15)."""

    def __init__(
        self,
        kind: str,
        workdir: Path,
        *,
        durable: bool = True,
        workers: int = 2,
        deadline_s: float = Options.deadline_s,
    ):
        self.kind, self.workdir, self.durable, self.workers = kind, Path(workdir), durable, workers
        self.deadline_s = deadline_s
        self.mongo: ServerProcess | None = None
        self.redis: RedisServer | None = None
        self.app: AppServer | None = None
        self.port: int | None = None
        self.uri = ""
        self.paused = False
        self.made: dict[str, str] = {}  # API keys by name

    def start(self) -> Stack:
        """Start the three servers (the app migrates its fresh database)."""
        try:
            self.mongo = database_server(self.kind, self.workdir / "mongo", None, self.durable)
            self.port, self.uri = self.mongo.port, self.mongo.uri
            self.redis = RedisServer(self.workdir / "redis").start()
            self.app = AppServer(
                self.uri,
                DB_NAME,
                self.workdir / "app",
                redis_url=self.redis.url,
                workers=self.workers,
                env={
                    **LOAD_ENV,
                    "CHATADMIN_MONGO_TIMEOUT_MS": str(int(self.deadline_s * 1000 / 6)),
                    "CHATADMIN_REPAIR_AFTER_S": str(self.deadline_s),
                    "CHATADMIN_REPAIR_INTERVAL_S": "1",
                },
            ).start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop what was started (a paused database is continued first)."""
        for stop in (self._stop_app, self._stop_redis, self._stop_mongo):
            with contextlib.suppress(Exception):
                stop()

    def _stop_app(self) -> None:
        if self.app is not None:
            self.app.stop()

    def _stop_redis(self) -> None:
        if self.redis is not None:
            self.redis.stop()

    def _stop_mongo(self) -> None:
        if self.paused:
            self.resume_database()
        if self.mongo is not None:
            self.mongo.stop()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def base(self) -> str:
        """The app's address."""
        return self.app.base

    def mongo_client(self) -> MongoClient:
        """A client of the database server, to read what is stored (never waiting for ever)."""
        return MongoClient(self.uri, serverSelectionTimeoutMS=30_000, socketTimeoutMS=300_000)

    def keys(self, wanted: dict[str, tuple[str, str]]) -> dict[str, str]:
        """API keys by name from `{name: (org, scopes)}` (a name ending in `:revoked` is revoked
        before any use), each made once: the missing ones in one process, through the service
        layer, with the app's settings (a `manage.py createapikey` costs seconds a key on a
        busy machine)."""
        missing = {name: spec for name, spec in wanted.items() if name not in self.made}
        if missing:
            done = subprocess.run(
                [sys.executable, "-c", MAKE_KEYS, json.dumps(missing)], env=self.app.env,
                cwd=self.app.workdir, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            if done.returncode != 0:
                raise ScenarioError(f"making API keys failed: {done.stderr[-2000:]}")
            self.made |= json.loads(done.stdout.strip().splitlines()[-1])
        return {name: self.made[name] for name in wanted}

    # database faults
    def kill_database(self) -> None:
        """kill -9 of the database server's process group."""
        proc = self.mongo.proc
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        self.mongo.proc = None

    def restart_database(self) -> None:
        """The database server again, on its port, on its data."""
        self.mongo = database_server(self.kind, self.workdir / "mongo", self.port, self.durable)

    def pause_database(self) -> None:
        """SIGSTOP: the server holds its connections and answers nothing."""
        os.killpg(self.mongo.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume_database(self) -> None:
        """SIGCONT after `pause_database`."""
        os.killpg(self.mongo.proc.pid, signal.SIGCONT)
        self.paused = False


# -- what a load sends ----------------------------------------------------------------------------


@dataclass
class Batch:
    """One `POST /ingest` body, encoded once, and what its answer must say."""

    number: int
    events: list[dict]
    body: bytes = b""
    messages: set[str] = field(default_factory=set)
    expected_errors: dict[str, str] = field(default_factory=dict)  # event id -> error code

    def __post_init__(self) -> None:
        self.body = json.dumps({"events": self.events}).encode()
        self.messages = {e["id"] for e in self.events if e["type"] == "message"}


@dataclass
class Plan:
    """An org's users, threads (and how each is made) and message batches."""

    org: str
    users: list[str]
    owners: dict[str, str]  # thread id -> owner
    made_by: dict[str, str]  # thread id -> "event", "post" or "message"
    messages: dict[str, dict]  # message id -> its event
    batches: list[Batch]

    @property
    def n(self) -> int:
        """How many distinct messages the plan sends."""
        return len(self.messages)


def message_event(mid: str, tid: str, owner: str, rng: random.Random, at_ms: int) -> dict:
    """A message event: a user question or an assistant answer with tokens and latency."""
    role = rng.choice(("user", "assistant"))
    data = {
        "thread_id": tid,
        "user_id": owner,
        "role": role,
        "content": f"{role} says {mid}: " + " ".join(rng.choices(WORDS, k=rng.randint(3, 30))),
        "created_at": dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).isoformat(),
    }
    if role == "assistant":
        tokens_in, tokens_out = rng.randint(10, 2000), rng.randint(10, 800)
        data["ai_metadata"] = {
            "model": "gpt-reliability",
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
            "response_ms": rng.randint(50, 9000),
        }
    return {"type": "message", "id": mid, "data": data}


WORDS = "volatility AAPL margin forecast quarter revenue churn cohort latency risk".split()


def make_plan(org: str, opts: Options, unknown_rate: float = 0.0) -> Plan:
    """The events of one load: shuffled, cut into batches, some carried twice."""
    rng = random.Random(f"{opts.seed}:{org}")
    users = [f"u{i:03d}" for i in range(max(4, opts.clients // 2))]
    tids = [f"t{i:05d}" for i in range(opts.threads)]
    owners = {tid: rng.choice(users) for tid in tids}
    made_by = {tid: ("message", "post", "event", "event")[i % 4] for i, tid in enumerate(tids)}
    hot = tids[:2]  # many writers at once: every batch has some of their messages
    now = int(time.time() * 1000)
    messages = {}
    for i in range(opts.messages):
        tid = rng.choice(hot) if rng.random() < 0.1 else rng.choice(tids)
        at_ms = now - rng.randint(0, 3 * DAY_MS)  # spread over four day buckets
        messages[f"m{i:07d}"] = message_event(f"m{i:07d}", tid, owners[tid], rng, at_ms)
    order = list(messages.values())
    rng.shuffle(order)
    batches, start = [], 0
    while start < len(order):
        size = rng.randint(*opts.batch)
        events = order[start : start + size]
        start += size
        if rng.random() < opts.duplicate_rate:
            events = events + rng.sample(order, min(len(order), rng.randint(1, 10)))
            rng.shuffle(events)
        expected = {}
        if rng.random() < unknown_rate:
            ref = f"r{len(batches):05d}"
            events.insert(rng.randint(0, len(events)), unknown_event(ref, events[0]["id"]))
            expected[ref] = "unknown_type"
        batch = Batch(len(batches), events)
        batch.expected_errors = expected
        batches.append(batch)
    return Plan(org, users, owners, made_by, messages, batches)


def unknown_event(ref: str, message_id: str) -> dict:
    """An event of a type this server does not know (a newer client's)."""
    return {"type": "reaction", "id": ref, "data": {"message_id": message_id, "emoji": "+1"}}


# -- what happened --------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the clients sent, what the server acknowledged, and how it answered."""

    sent: set[str] = field(default_factory=set)
    acked: set[str] = field(default_factory=set)
    spooled: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)  # rate_limited, and never sent again
    created: Counter = field(default_factory=Counter)  # message id -> "created" answers
    http: Counter = field(default_factory=Counter)
    events: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    answers: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, status
    problems: list[str] = field(default_factory=list)  # answers that break a rule
    event_errors: list[str] = field(default_factory=list)  # unexpected per-event errors
    hung: int = 0
    inflight: int = 0  # requests sent and not answered yet
    abandoned: int = 0
    duplicates_in_batches: int = 0
    resends: Counter = field(default_factory=Counter)
    expected_ok: int = 0
    stored: int = 0  # distinct message ids stored (set by `verify`)
    stored_docs: int = 0
    lost: int = 0

    def problem(self, text: str) -> None:
        """Keep an answer that breaks a rule (the first 200)."""
        if len(self.problems) < 200:
            self.problems.append(text)

    def acked_share(self, plan: Plan) -> float:
        """The share of the plan's messages acknowledged so far."""
        return len(self.acked) / max(1, plan.n)


def absorb(ledger: Ledger, batch: Batch, status: int, body: dict) -> bool:
    """Take in a 200/202/207 answer; True when every event got its final answer."""
    results = body.get("results")
    if not isinstance(results, list) or len(results) != len(batch.events):
        ledger.problem(f"batch {batch.number}: {status} without one result per event")
        return False
    final = True
    for event, result in zip(batch.events, results, strict=True):
        code = (result.get("error") or {}).get("code")
        ledger.events[result["status"] if code is None else f"error:{code}"] += 1
        if event["id"] in batch.expected_errors:
            final &= expected_error(ledger, batch, event, result, status)
        elif event["type"] == "message":
            final &= acknowledged(ledger, batch, event, result)
    return final


def expected_error(ledger: Ledger, batch: Batch, event: dict, result: dict, status: int) -> bool:
    """An event that must get its own error (and leave the rest of its batch alone)."""
    code = (result.get("error") or {}).get("code")
    if code == batch.expected_errors[event["id"]] and status == 207:
        ledger.expected_ok += 1
        return True
    ledger.problem(f"{event['type']} {event['id']}: answered {result['status']}/{code} in {status}")
    return True  # not retried: it would get the same answer


def acknowledged(ledger: Ledger, batch: Batch, event: dict, result: dict) -> bool:
    """A message event's answer: acknowledged, refused by a rate limit, or to be retried."""
    mid, state = event["id"], result["status"]
    if state in ACKS:
        ledger.acked.add(mid)
        if state == "created":
            ledger.created[mid] += 1
        if result.get("spooled"):
            ledger.spooled.add(mid)
        return True
    code = (result.get("error") or {}).get("code")
    if code == "rate_limited" and batch.number < 0:  # a probe: refused means not stored
        ledger.refused.add(mid)
        return True
    if len(ledger.event_errors) < 50:
        ledger.event_errors.append(f"{mid}: {state} {result.get('error')}")
    return mid in ledger.acked


# -- the load -------------------------------------------------------------------------------------


@dataclass
class Target:
    """Where a client sends: the app and one org's key."""

    base: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        """The key, and JSON bodies."""
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def client(self, timeout: float = 30.0) -> httpx.AsyncClient:
        """A client of one kept-alive connection, as one client process of the app has."""
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return httpx.AsyncClient(
            base_url=self.base, headers=self.headers, timeout=timeout, limits=limits
        )


MAX_ATTEMPTS = 60
PROBE_BUSY_TRIES = 30  # a probe (or hostile request) the write gate turned away: sent again


async def post(http: httpx.AsyncClient, batch: Batch, seconds: float) -> tuple[str, int, dict]:
    """One attempt: (what happened, status, JSON body)."""
    try:
        r = await http.post(f"{API}/ingest", content=batch.body, timeout=seconds)
    except httpx.TimeoutException:
        return "timeout", 0, {}
    except httpx.TransportError as exc:
        return f"connection error ({type(exc).__name__})", 0, {}
    try:
        body = r.json()
    except ValueError:
        body = {}
    retry_after = r.headers.get("retry-after")
    if retry_after is not None:
        body = {**body, "_retry_after": retry_after}
    what = str(r.status_code)
    if r.status_code == 503:  # `busy` (the write gate: load) or `unavailable` (the database)
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        what += f" {error.get('code', '?')}"
    return what, r.status_code, body


async def deliver(http: httpx.AsyncClient, batch: Batch, ctx: LoadContext) -> None:
    """Send a batch until every event has its final answer (bounded in attempts and time)."""
    ledger, rng = ctx.ledger, ctx.rng
    ledger.sent |= batch.messages
    for attempt in range(MAX_ATTEMPTS):
        if time.monotonic() > ctx.stop_at:
            break
        short = rng.random() < ctx.opts.short_timeout_rate
        if await attempt_once(http, batch, ctx, short, attempt):
            if rng.random() < ctx.opts.resend_rate:  # an acknowledged batch, sent again
                ledger.resends["of acknowledged batches"] += 1
                await attempt_once(http, batch, ctx, False, attempt)
            return
        ledger.resends["after a failed attempt"] += 1
    ledger.abandoned += 1


async def attempt_once(
    http: httpx.AsyncClient, batch: Batch, ctx: LoadContext, short: bool, attempt: int
) -> bool:
    """One attempt and what it means: True when the batch is done."""
    ledger = ctx.ledger
    timeout = ctx.rng.uniform(0.05, 1.0) if short else ctx.opts.deadline_s
    started = time.monotonic()
    ledger.inflight += 1
    try:
        what, status, body = await post(http, batch, timeout)
    finally:
        ledger.inflight -= 1
    ended = time.monotonic()
    if what == "timeout":
        what = "client timeout (short)" if short else "TIMEOUT past the deadline"
        ledger.hung += not short
    ledger.http[what] += 1
    ledger.answers.append((started, ended, what))
    if status:
        ledger.latencies.append(ended - started)
    if status in (200, 202, 207) and absorb(ledger, batch, status, body):
        return True
    if status >= 500 and status != 503:
        ledger.problem(f"batch {batch.number}: {status} {str(body)[:300]}")
    elif status == 503 and not body.get("_retry_after"):
        ledger.problem(f"batch {batch.number}: 503 without Retry-After")
    elif 400 <= status < 500 and status != 429:
        ledger.problem(f"batch {batch.number}: {status} {str(body)[:300]}")
        return True  # the same body gets the same answer: not retried
    await asyncio.sleep(pause(body, attempt, ctx.rng))
    return False


def pause(body: dict, attempt: int, rng: random.Random) -> float:
    """How long a client waits before a retry (Retry-After, capped: the suite is in a hurry)."""
    try:
        wanted = float(body.get("_retry_after", 0))
    except ValueError:
        wanted = 0.0
    return min(max(wanted, 0.05 * 2 ** min(attempt, 4)), 1.0) * rng.uniform(0.5, 1.0)


@dataclass
class LoadContext:
    """What the clients of one load share."""

    opts: Options
    ledger: Ledger
    stop_at: float
    rng: random.Random


class Gate:
    """How many of a load's batches the clients may take: a fault driver opens it step by step,
    so that its faults meet requests in flight whatever the size of the run."""

    def __init__(self, total: int, share: float = 1.0) -> None:
        self.total, self.taken, self.changed = total, 0, asyncio.Event()
        self.allowed = math.ceil(share * total)

    def open(self, share: float = 1.0) -> None:
        """Let the clients take batches up to `share` of them (never fewer than before)."""
        self.allowed = max(self.allowed, math.ceil(share * self.total))
        self.changed.set()

    async def take(self, stop_at: float) -> bool:
        """Wait for a batch to be allowed; False when all are taken or the time is up."""
        while self.taken >= self.allowed:
            if self.taken >= self.total:
                return False
            self.changed.clear()
            left = stop_at - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        self.taken += 1
        return True


@dataclass
class Run:
    """One load in progress, as its fault driver sees it."""

    target: Target
    plan: Plan
    ledger: Ledger
    stop_at: float
    gate: Gate

    async def acked(self, share: float) -> None:
        """Wait until `share` of the plan's messages are acknowledged (or the time is up)."""
        while self.ledger.acked_share(self.plan) < share and not self.late():  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def busy(self, requests: int, share: float, within: float = 10.0) -> None:
        """Open the gate to `share` and wait until `requests` are in flight, or all it let
        through are taken and one is in flight (at most `within` seconds)."""
        self.gate.open(share)
        until = time.monotonic() + within
        while time.monotonic() < until and not self.in_flight(requests):  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    def in_flight(self, requests: int) -> bool:
        """`requests` in flight, or every batch let through taken and one in flight."""
        inflight = self.ledger.inflight
        return inflight >= requests or (inflight and self.gate.taken >= self.gate.allowed)

    def late(self) -> bool:
        """The load's time is up."""
        return time.monotonic() > self.stop_at


async def run_load(run: Run, opts: Options) -> None:
    """Every batch of the plan through `opts.clients` concurrent clients."""
    queue = deque(run.plan.batches)

    async def client(number: int) -> None:
        rng = random.Random(opts.seed * 1000 + number)
        ctx = LoadContext(opts, run.ledger, run.stop_at, rng)
        async with run.target.client() as http:
            while queue and await run.gate.take(run.stop_at) and queue:
                await deliver(http, queue.popleft(), ctx)

    await asyncio.gather(*(client(i) for i in range(opts.clients)))
    carried = sum(e["type"] == "message" for b in run.plan.batches for e in b.events)
    run.ledger.duplicates_in_batches = carried - run.plan.n


async def setup(target: Target, plan: Plan) -> None:
    """The load's users (owners: the raised limit) and threads (by event and by POST)."""
    async with target.client(timeout=120) as http:
        users = [
            {"type": "user", "id": u, "data": {"role": "owner", "username": u}} for u in plan.users
        ]
        threads = [
            {"type": "thread", "id": t, "data": {"user_id": o, "title": f"thread {t}"}}
            for t, o in plan.owners.items()
            if plan.made_by[t] == "event"
        ]
        for events in [users] + [threads[i : i + 500] for i in range(0, len(threads), 500)]:
            r = await http.post(f"{API}/ingest", json={"events": events})
            if r.status_code != 200:
                raise ScenarioError(f"setup ingest answered {r.status_code}: {r.text[:500]}")
        posted = [t for t in plan.owners if plan.made_by[t] == "post"]
        gate = asyncio.Semaphore(8)

        async def make(tid: str) -> None:
            async with gate:
                body = {"thread_id": tid, "user_id": plan.owners[tid], "title": f"thread {tid}"}
                r = await http.post(f"{API}/threads", json=body)
                if r.status_code != 201:
                    raise ScenarioError(f"POST /threads answered {r.status_code}: {r.text[:300]}")

        await asyncio.gather(*(make(t) for t in posted))


async def watch_ready(base: str, samples: list[dict], stop: asyncio.Event) -> None:
    """Poll `/readyz` twice a second, as a load balancer would."""
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = await http.get("/readyz")
                samples.append({"t": time.monotonic(), "status": r.status_code, **r.json()})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


async def spool_drained(base: str, stop_at: float) -> tuple[bool, str]:
    """Wait until `/readyz` says MongoDB answers and the spool is empty; (done, last answer)."""
    last = "no answer"
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while True:
            try:
                r = await http.get("/readyz")
                body, last = r.json(), f"{r.status_code} {r.text[:300]}"
                if body["mongo"] == "ok" and body["spool"]["segments"] == 0:
                    return True, last
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > stop_at:
                return False, last
            await asyncio.sleep(0.25)


async def repairs_done(stack: Stack, stop_at: float) -> Check:
    """Wait until the app has repaired every write that died half-way (its journal is empty)."""
    started, most = time.monotonic(), 0
    with stack.mongo_client() as client:
        journal = client[DB_NAME]["write_journal"]
        while True:
            left = await asyncio.to_thread(journal.count_documents, {})
            most = max(most, left)
            if left == 0 or time.monotonic() > stop_at:
                break
            await asyncio.sleep(0.5)
    waited = time.monotonic() - started
    detail = f"{most} write(s) in the journal after the load, {left} left after {waited:.1f} s"
    return Check("the app repaired every write that died half-way", left == 0, detail)


# -- the checks -----------------------------------------------------------------------------------


@dataclass
class Check:
    """One rule and whether it held."""

    name: str
    ok: bool
    detail: str = ""


def sample(items, n: int = 5) -> str:
    """The first `n` items, sorted, and how many more."""
    items = sorted(items)
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(str(i) for i in items[:n]) + more


@dataclass
class Stored:
    """What the database holds for one org."""

    messages: list[dict]
    threads: list[dict]
    users: list[dict]
    buckets: list[dict]


def read_stored(stack: Stack, org: str) -> Stored:
    """The org's messages, threads, users and day buckets, read straight from the server."""
    fields = [
        "message_id",
        "thread_id",
        "seq",
        "user_id",
        "ai_metadata",
        "deleted",
        "has_error",
        "created_at_ms",
    ]
    with stack.mongo_client() as client:
        db = client[DB_NAME]
        return Stored(
            messages=list(db.chat_messages.find({"org_id": org}, dict.fromkeys(fields, 1))),
            threads=list(db.chat_sessions.find({"org_id": org})),
            users=list(db.users.find({"org_id": org})),
            buckets=list(db.chat_analytics.find({"org_id": org})),
        )


def count_checks(plan: Plan, ledger: Ledger, stored: Stored) -> list[Check]:
    """Sent, acknowledged and stored agree."""
    ids = [m["message_id"] for m in stored.messages]
    held = set(ids)
    unacked = ledger.sent - ledger.acked - ledger.refused
    lost = ledger.acked - held
    twice = [mid for mid, n in ledger.created.items() if n > 1]
    return [
        Check(
            "every message sent was acknowledged",
            not unacked and not ledger.abandoned,
            f"{len(unacked)} not acknowledged ({sample(unacked)}), "
            f"{ledger.abandoned} batches given up",
        ),
        Check(
            "every planned message was sent",
            ledger.sent >= set(plan.messages) - ledger.refused,
            f"{len(set(plan.messages) - ledger.sent)} never sent",
        ),
        Check("no acknowledged message lost", not lost, f"{len(lost)} lost: {sample(lost)}"),
        Check(
            "nothing stored twice",
            len(ids) == len(held),
            f"{len(ids) - len(held)} duplicate documents",
        ),
        Check("no message answered `created` twice", not twice, f"{len(twice)}: {sample(twice)}"),
        Check(
            "nothing stored that was refused or never sent",
            held <= ledger.sent and not held & ledger.refused,
            f"never sent: {sample(held - ledger.sent)}; refused: {sample(held & ledger.refused)}",
        ),
    ]


def thread_checks(plan: Plan, stored: Stored) -> list[Check]:
    """Every thread exists once, with seqs 0..k-1 and counters equal to its messages."""
    wanted = set(plan.owners)
    by_thread: dict[str, list[dict]] = defaultdict(list)
    for m in stored.messages:
        by_thread[m["thread_id"]].append(m)
    found = Counter(t["thread_id"] for t in stored.threads)
    gaps, wrong, owners = [], [], []
    for thread in stored.threads:
        tid, msgs = thread["thread_id"], by_thread.get(thread["thread_id"], [])
        seqs = sorted(m["seq"] for m in msgs)
        if seqs != list(range(len(msgs))) or thread.get("next_seq") != len(msgs):
            gaps.append(
                f"{tid} ({len(msgs)} messages, next_seq {thread.get('next_seq')}, "
                f"missing {sample(set(range(max(seqs, default=-1) + 1)) - set(seqs), 3)})"
            )
        expected = recount(msgs)
        have = {k: thread.get(k, 0) for k in expected}
        if have != expected:
            wrong.append(f"{tid} {diff(have, expected)}")
        if tid in plan.owners and thread["user_id"] != plan.owners[tid]:
            owners.append(tid)
    missing = wanted - set(found)
    doubled = [t for t, n in found.items() if n > 1]
    return [
        Check(
            "every thread exists once, owned by its user",
            not missing and not doubled and not owners,
            f"missing {sample(missing)}; twice {sample(doubled)}; wrong owner {sample(owners)}",
        ),
        Check(
            "every thread's seqs are 0..k-1 (next_seq k)",
            not gaps,
            f"{len(gaps)} threads: {'; '.join(gaps[:5])}",
        ),
        Check(
            "thread counters equal their messages",
            not wrong,
            f"{len(wrong)} threads: {'; '.join(wrong[:5])}",
        ),
    ]


def recount(msgs: list[dict]) -> dict[str, int]:
    """A thread's counters as its live messages add up."""
    live = [m for m in msgs if not m.get("deleted")]
    metas = [m.get("ai_metadata") or {} for m in live]
    return {
        "message_count": len(live),
        "total_tokens": sum(tokens(a) for a in metas),
        "total_response_ms": sum(a.get("response_ms") or 0 for a in metas),
        "response_count": sum(a.get("response_ms") is not None for a in metas),
        "error_count": sum(bool(m.get("has_error")) for m in live),
    }


def tokens(meta: dict) -> int:
    """A message's tokens as the product counts them (`AiMetadata.tokens`)."""
    return meta.get("total_tokens") or meta.get("input_tokens", 0) + meta.get("output_tokens", 0)


def diff(have: dict, expected: dict) -> str:
    """The counters that differ, with what they should be."""
    return ", ".join(f"{k} {have[k]} (should be {v})" for k, v in expected.items() if have[k] != v)


def counter_checks(stored: Stored) -> list[Check]:
    """Users' message counts and the day buckets equal a recount of the stored messages."""
    live = [m for m in stored.messages if not m.get("deleted")]
    per_user = Counter(m["user_id"] for m in live)
    users = [
        f"{u['user_id']} {u.get('message_count', 0)} (should be {per_user[u['user_id']]})"
        for u in stored.users
        if u.get("message_count", 0) != per_user[u["user_id"]]
    ]
    recounted: Counter = Counter()
    for m in live:
        day = m["created_at_ms"] // DAY_MS * DAY_MS
        for who in ("*", m["user_id"]):
            recounted[(who, day, "messages")] += 1
            recounted[(who, day, "tokens_total")] += tokens(m.get("ai_metadata") or {})
    held: Counter = Counter()
    for b in stored.buckets:
        for name in ("messages", "tokens_total"):
            held[(b["user_id"], b["period_start_ms"], name)] += b.get(name, 0)
    off = [
        f"{k[0]} {day_name(k[1])} {k[2]} {held[k]} (recount {recounted[k]})"
        for k in sorted(set(held) | set(recounted))
        if held[k] != recounted[k]
    ]
    return [
        Check(
            "users' message_count equal their messages",
            not users,
            f"{len(users)} users: {'; '.join(users[:5])}",
        ),
        Check(
            "day buckets equal a recount (messages, tokens)",
            not off,
            f"{len(off)} differences: {'; '.join(off[:6])}",
        ),
    ]


def day_name(ms: int) -> str:
    """A day bucket's start as a date."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat()


def rollup_check(stack: Stack, org: str) -> Check:
    """`manage.py rollup --check --org ORG` through the app's own settings."""
    done = stack.app.manage("rollup", "--check", "--org", org, timeout=600)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return Check(
        "`manage.py rollup --check` finds no difference",
        done.returncode == 0,
        " | ".join(lines[-6:]),
    )


def answer_checks(ledger: Ledger) -> list[Check]:
    """No 5xx but 503, no request past its deadline, no unexpected per-event answer."""
    return [
        Check(
            "no answer breaks a rule (5xx other than 503, 4xx, bad body)",
            not ledger.problems,
            f"{len(ledger.problems)}: {'; '.join(ledger.problems[:5])}",
        ),
        Check(
            "no request past its deadline",
            not ledger.hung,
            f"{ledger.hung} requests unanswered after their deadline",
        ),
        Check(
            "no unexpected per-event error",
            not ledger.event_errors,
            f"{len(ledger.event_errors)}: {'; '.join(ledger.event_errors[:3])}",
        ),
        Check(
            "no identical message answered `updated`",
            not ledger.events["updated"],
            f"{ledger.events['updated']} answered updated",
        ),
    ]


def verify(stack: Stack, plan: Plan, ledger: Ledger, rollup: bool) -> list[Check]:
    """Every check of what is stored against what was sent and acknowledged (`rollup`: and
    the product's own recount of the day buckets, `manage.py rollup --check`)."""
    stored = read_stored(stack, plan.org)
    checks = answer_checks(ledger) + count_checks(plan, ledger, stored)
    checks += thread_checks(plan, stored) + counter_checks(stored)
    if rollup:
        checks.append(rollup_check(stack, plan.org))
    ids = {m["message_id"] for m in stored.messages}
    ledger.stored, ledger.stored_docs = len(ids), len(stored.messages)
    ledger.lost = len(ledger.acked - ids)
    return checks


# -- reports --------------------------------------------------------------------------------------


@dataclass
class Report:
    """One scenario's figures and checks."""

    name: str
    title: str
    checks: list[Check] = field(default_factory=list)
    rows: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every check held."""
        return all(c.ok for c in self.checks)

    def figures(self) -> dict:
        """The report as JSON figures."""
        checks = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks]
        return {
            "name": self.name,
            "title": self.title,
            "ok": self.ok,
            "seconds": self.seconds,
            "rows": self.rows,
            "checks": checks,
        }

    def render(self) -> str:
        """The scenario's table: figures, then every check (with the details of those that
        failed)."""
        head = f"== {self.name}: {self.title} ({self.seconds:.1f} s) " + (
            "OK" if self.ok else "FAILED"
        )
        lines = [head] + [f"  {k:<14} {v}" for k, v in self.rows]
        lines.append("  checks")
        for c in self.checks:
            lines.append(f"    {'ok  ' if c.ok else 'FAIL'}  {c.name}")
            if not c.ok:
                lines.append(f"          {c.detail}")
        return "\n".join(lines)


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def figures(plan: Plan, ledger: Ledger) -> list[tuple[str, str]]:
    """The table rows every scenario prints."""
    resends = ", ".join(f"{n} {why}" for why, n in ledger.resends.items()) or "none"
    return [
        (
            "sent",
            f"{len(ledger.sent):,} messages in {len(plan.batches):,} batches "
            f"(+{ledger.duplicates_in_batches:,} duplicated events)",
        ),
        (
            "acknowledged",
            f"{len(ledger.acked):,}"
            + (f" ({len(ledger.spooled):,} spooled)" if ledger.spooled else "")
            + (f", {len(ledger.refused)} refused (rate_limited)" if ledger.refused else ""),
        ),
        ("stored", f"{ledger.stored:,}"),
        (
            "duplicates",
            f"{ledger.stored_docs - ledger.stored:,} stored, "
            f"{sum(n > 1 for n in ledger.created.values()):,} answered `created` twice",
        ),
        ("lost", f"{ledger.lost:,}"),
        (
            "latency",
            f"p50 {percentile(ledger.latencies, 0.5):.2f} s, "
            f"p99 {percentile(ledger.latencies, 0.99):.2f} s, "
            f"max {max(ledger.latencies, default=0):.2f} s "
            f"({len(ledger.latencies):,} answers)",
        ),
        ("resends", resends),
        ("http", ", ".join(f"{k}: {v:,}" for k, v in sorted(ledger.http.items()))),
        ("events", ", ".join(f"{k}: {v:,}" for k, v in sorted(ledger.events.items()))),
    ]


# -- scenarios ------------------------------------------------------------------------------------

Driver = Callable[[Run], Awaitable[list[Check]]]


async def loaded(
    stack: Stack,
    org: str,
    opts: Options,
    driver: Driver | None = None,
    unknown_rate: float = 0.0,
    first_share: float = 1.0,
    target: Target | None = None,
    rollup: bool = False,
) -> tuple[Plan, Ledger, list[Check], list[dict]]:
    """Set up an org, run its load (with `driver` beside it), wait for the spool, verify."""
    stop_at = time.monotonic() + opts.limit_s
    if target is None:
        target = await load_target(stack, org)
    plan = make_plan(org, opts, unknown_rate)
    await setup(target, plan)
    ledger, samples, stop = Ledger(), [], asyncio.Event()
    run = Run(target, plan, ledger, stop_at, Gate(len(plan.batches), first_share))
    watcher = asyncio.create_task(watch_ready(stack.base, samples, stop))
    try:
        _, checks = await asyncio.gather(run_load(run, opts), drive(run, driver))
        drained, ready = await spool_drained(stack.base, max(stop_at, time.monotonic() + 30))
        # A repair round that met an outage gives its records back; one that died holds them
        # for its lease.
        repaired = await repairs_done(
            stack, time.monotonic() + stack.deadline_s + repair.LEASE_S + 10
        )
    finally:
        stop.set()
        await watcher
    checks.append(
        Check(
            "the spool is empty and MongoDB answers after the load",
            drained,
            f"/readyz: {ready}",
        )
    )
    checks.append(repaired)
    checks += await asyncio.to_thread(verify, stack, plan, ledger, rollup)
    return plan, ledger, checks, samples


def load_keys(org: str) -> dict[str, tuple[str, str]]:
    """The key a load of `org` sends with."""
    return {f"{org}:load": (org, "ingest,read")}


def hostile_keys(org: str) -> dict[str, tuple[str, str]]:
    """The keys the hostile corpus names (by its names), for `org`-a, and `org`-b as the other
    org."""
    a, b = f"{org}-a", f"{org}-b"
    return {
        f"{a}:all": (a, "ingest,read,share,admin"),
        f"{a}:read": (a, "read"),
        f"{a}:ingest": (a, "ingest"),
        f"{b}:other": (b, "ingest,read,share,admin"),
        f"{a}:revoked": (a, "ingest,read"),
    }


def prepare(stack: Stack, names) -> None:
    """Every key the named scenarios will use, made at once (one process start, not one each)."""
    wanted = {}
    for name in names:
        wanted |= load_keys(name) | (hostile_keys(name) if name == "bad-input" else {})
    stack.keys(wanted)


async def load_target(stack: Stack, org: str) -> Target:
    """The app, and the key of `org` for its load."""
    keys = await asyncio.to_thread(stack.keys, load_keys(org))
    return Target(stack.base, keys[f"{org}:load"])


async def drive(run: Run, driver: Driver | None) -> list[Check]:
    """The driver's checks; the gate opens fully when it is done, whatever happened."""
    try:
        return await driver(run) if driver else []
    finally:
        run.gate.open(1.0)


def finish(name: str, title: str, plan: Plan, ledger: Ledger, checks, started: float) -> Report:
    """A scenario's report, its time counted from `started`."""
    report = Report(name, title, checks, figures(plan, ledger))
    report.seconds = time.monotonic() - started
    return report


def describe(opts: Options) -> str:
    """What a load is, in a line."""
    lo, hi = opts.batch
    return (
        f"{opts.messages:,} message events, {opts.clients} clients, batches {lo}-{hi}, "
        f"{opts.threads:,} threads, deadline {opts.deadline_s:g} s, {opts.server}"
    )


async def scenario_load(stack: Stack, opts: Options, org: str = "load") -> Report:
    """Load with retries: exactly N stored, seqs and counters in step, day buckets recounted
    (also by `manage.py rollup --check`; the other scenarios recount them here only)."""
    started = time.monotonic()
    plan, ledger, checks, _ = await loaded(stack, org, opts, rollup=True)
    return finish("load", describe(opts), plan, ledger, checks, started)


async def scenario_worker_kill(stack: Stack, opts: Options, org: str = "worker-kill") -> Report:
    """kill -9 of an app worker mid-load: clients retry; nothing acknowledged lost or doubled."""
    started, notes = time.monotonic(), []

    async def driver(run: Run) -> list[Check]:
        checks, plan, ledger = [], run.plan, run.ledger
        for k in range(opts.kills):
            await run.acked((k + 0.5) / (opts.kills + 1))
            await run.busy(max(1, opts.clients // 2), (k + 1.5) / (opts.kills + 1))
            pids = stack.app.worker_pids()
            if not pids:
                return [Check("a worker to kill", False, "worker_pids() is empty")]
            victim, connections = busiest(pids, stack.app.port)
            share = ledger.acked_share(plan)
            os.kill(victim, signal.SIGKILL)
            run.gate.open((k + 2) / (opts.kills + 1))  # the rest goes on while uvicorn restarts
            restarted = await asyncio.to_thread(wait_restarted, stack.app, victim, 60)
            notes.append(
                f"killed worker {victim} ({connections} client connections) at "
                f"{share:.0%} acknowledged; "
                f"{'replaced by ' + str(restarted[0]) if restarted[0] else 'NOT replaced'}"
                f" after {restarted[1]:.1f} s"
            )
            checks.append(
                Check(
                    f"uvicorn replaced killed worker {victim}",
                    bool(restarted[0]),
                    f"workers now {stack.app.worker_pids()}",
                )
            )
        return checks

    first = 0.5 / (opts.kills + 1) + 0.1
    plan, ledger, checks, _ = await loaded(stack, org, opts, driver, first_share=first)
    report = finish("worker-kill", describe(opts), plan, ledger, checks, started)
    report.rows += [("worker kills", n) for n in notes]
    return report


def busiest(pids: list[int], port: int) -> tuple[int, int]:
    """The worker holding the most client connections (so the kill lands on requests), and
    how many it holds."""
    held = established(port)
    counts = {pid: len(socket_inodes(pid) & held) for pid in pids}
    victim = max(pids, key=lambda pid: counts[pid])
    return victim, counts[victim]


def established(port: int) -> set[str]:
    """Socket inodes of established TCP connections to local `port` (from /proc/net/tcp)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "01":
                    inodes.add(cols[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    """The socket inodes a process holds open."""
    found = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    found.add(target[8:-1])
    return found


def wait_restarted(app: AppServer, victim: int, timeout: float) -> tuple[int | None, float]:
    """A new worker pid once `workers` workers run again without `victim`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        pids = app.worker_pids()
        if victim not in pids and len(pids) >= app.workers and app.wait_workers(5):
            return max(pids), time.monotonic() - started
        time.sleep(0.1)
    return None, time.monotonic() - started


@dataclass
class Window:
    """A span of time a fault lasted."""

    name: str
    start: float
    end: float = float("inf")

    def meets(self, start: float, end: float) -> bool:
        """A request from `start` to `end` was in flight during the window."""
        return start <= self.end and end >= self.start


def during(ledger: Ledger, window: Window) -> Counter:
    """What the requests in flight during a window got."""
    return Counter(what for s, e, what in ledger.answers if window.meets(s, e))


async def scenario_database(stack: Stack, opts: Options, org: str = "database") -> Report:
    """kill -9 and SIGSTOP of the database mid-load: 503 or spooled, never 500, never a hang;
    recovers by itself; every acknowledged (spooled) event replayed once. `stack` is durable."""
    started, windows = time.monotonic(), []

    async def driver(run: Run) -> list[Check]:
        await run.acked(0.2)
        await run.busy(max(1, opts.clients // 2), 0.4)  # in flight when it dies
        windows.append(Window("killed", time.monotonic()))
        await asyncio.to_thread(stack.kill_database)
        run.gate.open(0.55)  # these meet a dead database
        await asyncio.sleep(opts.outage_s)
        await asyncio.to_thread(stack.restart_database)
        windows[-1].end = time.monotonic()
        run.gate.open(0.65)
        await run.acked(0.6)
        await run.busy(max(1, opts.clients // 2), 0.85)  # in flight when it freezes
        windows.append(Window("stopped", time.monotonic()))
        stack.pause_database()
        await asyncio.sleep(opts.deadline_s + 2)  # longer than any request may take
        stack.resume_database()
        windows[-1].end = time.monotonic()
        return []

    if not stack.durable:
        raise ScenarioError("the database scenario needs a durable stack")
    target = await load_target(stack, org)
    plan, ledger, checks, samples = await loaded(
        stack, org, opts, driver, first_share=0.3, target=target
    )
    checks += outage_checks(samples)
    checks.append(await recovered(target))
    checks.append(lock_kept(stack, samples))
    report = finish("database", describe(opts), plan, ledger, checks, started)
    report.rows += window_rows(ledger, windows, opts.deadline_s / 2)
    depth = max((s.get("spool", {}).get("bytes", 0) for s in samples), default=0)
    report.rows.append(("spool", f"{len(ledger.spooled):,} events spooled, deepest {depth:,} B"))
    return report


def lock_kept(stack: Stack, samples: list[dict]) -> Check:
    """The app's MongoDB client never lost its topology lock: the driver raises RuntimeError
    "Lock is not acquired" when a cancelled operation releases it (docs/mongo-compat.md, "The
    driver"), seen in the app's log or as `/readyz`'s reason."""
    logged = stack.app.log().count("Lock is not acquired")
    ready = sum(1 for s in samples if s.get("mongo") == "down: RuntimeError")
    return Check(
        "the MongoDB client never lost its lock",
        logged == 0 and ready == 0,
        f"{logged} in the app log, {ready} /readyz answers",
    )


def window_rows(ledger: Ledger, windows: list[Window], slow_s: float) -> list[tuple[str, str]]:
    """What the requests in flight during each fault got, and the slow ones."""
    rows = []
    for w in windows:
        seen = ", ".join(f"{k}: {v}" for k, v in sorted(during(ledger, w).items()))
        rows.append((f"db {w.name}", f"{w.end - w.start:.1f} s; answers: {seen or 'none'}"))
        slow = [
            f"+{s - w.start:.1f} s took {e - s:.1f} s: {what}"
            for s, e, what in ledger.answers
            if w.meets(s, e) and e - s > slow_s
        ]
        rows += [(f"  slow ({w.name})", line) for line in slow[:6]]
    return rows


def outage_checks(samples: list[dict]) -> list[Check]:
    """The faults took effect: `/readyz` saw MongoDB down. (How requests were answered meanwhile
    is in the answer checks: 200, 202 or 503 within the deadline are all right.)"""
    down = [s for s in samples if s.get("status") == 503 and s.get("mongo", "ok") != "ok"]
    return [
        Check(
            "/readyz said MongoDB was down during the outage", bool(down), f"{len(samples)} samples"
        )
    ]


async def recovered(target: Target) -> Check:
    """After the outage a new write goes straight in (200, not spooled): no restart needed."""
    event = {"type": "user", "id": "after-the-outage", "data": {"username": "back"}}
    started = time.monotonic()
    try:
        async with target.client() as http:
            r = await http.post(f"{API}/ingest", json={"events": [event]})
    except httpx.HTTPError as exc:
        took = time.monotonic() - started
        what = f"{exc!r} after {took:.1f} s"
        return Check("a write after recovery goes straight in", False, what)
    ok = r.status_code == 200 and r.json()["results"][0]["status"] == "created"
    return Check("a write after recovery goes straight in", ok, f"{r.status_code} {r.text[:300]}")


async def scenario_redis(stack: Stack, opts: Options, org: str = "redis") -> Report:
    """Redis killed and restarted mid-load: ingest goes on, limits fail open, real-time 503,
    recovery without a restart."""
    started, notes, windows = time.monotonic(), [], []

    async def driver(run: Run) -> list[Check]:
        ledger = run.ledger
        probe = Probe(run.target, ledger)
        await probe.setup()
        await run.acked(0.2)
        before = await probe.round(MANAGER_PER_MINUTE + 1)
        acked = len(ledger.acked)
        await run.busy(max(1, opts.clients // 2), 0.7)
        windows.append(Window("down", time.monotonic()))
        await asyncio.to_thread(stack.redis.kill)
        await asyncio.sleep(0.5)
        down = await probe.round(MANAGER_PER_MINUTE + 10)
        await asyncio.sleep(opts.outage_s)
        moved = len(ledger.acked) - acked
        await asyncio.to_thread(stack.redis.start)
        windows[-1].end = time.monotonic()
        run.gate.open(1.0)
        back_after = await probe.presence_back(stack.workers, run.stop_at)
        after = await probe.round(MANAGER_PER_MINUTE + 1)
        notes.extend(
            [
                f"before: {before}",
                f"down: {down}",
                f"back after {back_after:.1f} s: {after}",
                f"{moved:,} messages acknowledged while Redis was down",
            ]
        )
        return redis_checks(before, down, after, back_after, moved, during(ledger, windows[0]))

    plan, ledger, checks, _ = await loaded(stack, org, opts, driver, first_share=0.4)
    report = finish("redis", describe(opts), plan, ledger, checks, started)
    report.rows += [("redis", n) for n in notes]
    return report


def redis_checks(before, down, after, back_after, moved, answered: Counter) -> list[Check]:
    """What must hold before, during and after the Redis outage."""
    limit = MANAGER_PER_MINUTE
    return [
        Check(
            "with Redis up, presence answers 200 and the manager limit holds",
            before["presence"] == 200 and before["created"] == limit and before["limited"] == 1,
            str(before),
        ),
        Check("with Redis down, presence answers 503", down["presence"] == 503, str(down)),
        Check(
            "with Redis down, rate limits fail open",
            down["created"] == down["sent"] and not down["limited"],
            str(down),
        ),
        Check(  # `503 busy` is the write gate turning a load away: it happens with Redis up too
            "with Redis down, ingest goes on (no 5xx but `busy`)",
            moved > 0
            and down["ingest"] == 200
            and not any(k.startswith("5") and k != "503 busy" for k in answered),
            f"{moved} acknowledged; {dict(answered)}",
        ),
        Check(
            "Redis back: real-time answers again without a restart",
            back_after >= 0,
            "presence still 503",
        ),
        Check(
            "Redis back: the manager limit holds again",
            after["created"] == limit and after["limited"] == 1,
            str(after),
        ),
    ]


class Probe:
    """A manager (the default 50 a minute) and a thread of theirs, to watch limits and presence."""

    def __init__(self, target: Target, ledger: Ledger) -> None:
        self.target, self.ledger, self.sent = target, ledger, 0

    async def setup(self) -> None:
        """The manager and their thread."""
        events = [
            {"type": "user", "id": PROBE_USER, "data": {"role": "manager"}},
            {"type": "thread", "id": PROBE_THREAD, "data": {"user_id": PROBE_USER}},
        ]
        async with self.target.client() as http:
            r = await http.post(f"{API}/ingest", json={"events": events})
        if r.status_code != 200:
            raise ScenarioError(f"probe setup answered {r.status_code}: {r.text[:300]}")

    async def round(self, n: int) -> dict:
        """Presence, then `n` messages of the manager in one batch: how many went in."""
        events = []
        for _ in range(n):
            mid, self.sent = f"probe-{self.sent:05d}", self.sent + 1
            data = {
                "thread_id": PROBE_THREAD,
                "user_id": PROBE_USER,
                "role": "user",
                "content": f"probe {mid}",
            }
            events.append({"type": "message", "id": mid, "data": data})
        batch = Batch(-1, events)
        self.ledger.sent |= batch.messages
        async with self.target.client() as http:
            presence = (await http.get(f"{API}/presence/{PROBE_USER}")).status_code
            for _ in range(PROBE_BUSY_TRIES):  # `busy` refuses the whole batch: sent again
                r = await http.post(f"{API}/ingest", content=batch.body)
                busy = r.status_code == 503 and '"busy"' in r.text
                self.ledger.http[f"{r.status_code}{' busy' if busy else ''}"] += 1
                if not busy:
                    break
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))
        if r.status_code in (200, 207):
            absorb(self.ledger, batch, r.status_code, r.json())
        codes = Counter(x["status"] for x in r.json().get("results", []))
        limited = sum(
            (x.get("error") or {}).get("code") == "rate_limited"
            for x in r.json().get("results", [])
        )
        return {
            "presence": presence,
            "ingest": r.status_code,
            "sent": n,
            "created": codes["created"],
            "limited": limited,
        }

    async def presence_back(self, workers: int, stop_at: float) -> float:
        """Seconds until presence answers 200 again on every worker (each keeps its own pause
        after a Redis failure); -1 when it did not within 30 s."""
        started = time.monotonic()
        deadline = min(stop_at, started + 30)
        async with contextlib.AsyncExitStack() as clients:
            pinned = await self.pinned(workers)
            for http in pinned:
                clients.push_async_callback(http.aclose)
            waiting = list(pinned)
            while waiting and time.monotonic() < deadline:
                answers = [await http.get(f"{API}/presence/{PROBE_USER}") for http in waiting]
                waiting = [h for h, r in zip(waiting, answers, strict=True) if r.status_code != 200]
                await asyncio.sleep(0.05 if waiting else 0)
            return -1.0 if waiting or len(pinned) < workers else time.monotonic() - started

    async def pinned(self, workers: int) -> list[httpx.AsyncClient]:
        """One kept-alive connection to each worker (told apart by `/healthz`'s pid)."""
        found: dict[int, httpx.AsyncClient] = {}
        for _ in range(50):
            if len(found) == workers:
                break
            http = self.target.client()
            pid = (await http.get("/healthz")).json()["pid"]
            if pid in found:
                await http.aclose()
            else:
                found[pid] = http
        return list(found.values())


async def scenario_bad_input(stack: Stack, opts: Options, org: str = "bad-input") -> Report:
    """Hostile requests mixed into the load get their 4xx and change nothing; an unknown event
    type gets its own error and never sinks its batch."""
    started, notes = time.monotonic(), []
    hostile = await Hostile.seeded(stack, org)

    async def driver(run: Run) -> list[Check]:
        def progress(share: float) -> None:  # the load goes on as long as the corpus
            run.gate.open(0.2 + 0.8 * share)

        outcome = await hostile.run(opts.hostile_step, run.stop_at, progress)
        notes.append(f"{outcome['sent']} hostile requests: {outcome['statuses']}")
        return hostile.checks(outcome)

    plan, ledger, checks, _ = await loaded(
        stack, org, opts, driver, unknown_rate=0.3, first_share=0.2
    )
    unknown = sum(len(b.expected_errors) for b in plan.batches)
    checks.append(
        Check(
            "every unknown-type event got its own error in a 207",
            ledger.expected_ok >= unknown,
            f"{ledger.expected_ok} of {unknown}",
        )
    )
    report = finish("bad-input", describe(opts), plan, ledger, checks, started)
    report.rows += [("hostile", n) for n in notes]
    report.rows.append(
        ("unknown type", f"{unknown} events, {ledger.expected_ok} answers unknown_type in a 207")
    )
    return report


# The seeded world the hostile corpus refers to (tests/contracts/test_hostile.py, `_build`),
# made through the API of the running app.
SEED = [
    ("PUT", "/users/u1", {"email": "u1@x.example", "username": "ann"}, 201),
    ("POST", "/threads", {"thread_id": "t1", "user_id": "u1", "title": "First"}, 201),
    ("POST", "/threads/t1/messages", {"message_id": "m1", "role": "user", "content": "hi"}, 201),
    ("POST", "/threads", {"thread_id": "t-del", "user_id": "u1"}, 201),
    ("DELETE", "/threads/t-del", None, 204),
    ("POST", "/analyses", {"analysis_id": "a1", "title": "Volatility", "tags": ["risk"]}, 201),
    ("POST", "/executions", {"execution_id": "e1", "question": "q"}, 201),
    (
        "POST",
        "/saved-analyses",
        {"saved_id": "s1", "user_id": "u1", "analysis_id": "a1", "name": "Mine"},
        201,
    ),
    ("PUT", "/cache", {"question": "q1", "result": {"n": 1}}, 200),
    ("POST", "/threads/t1/share", {}, 201),
]


class RawClient:
    """Sends one request byte for byte on a new connection, with its headers as given (a
    declared Content-Length that is no number, or not the body's length, included: httpx will
    not send those), and reads the answer; `request` is httpx's, so the corpus's `send` uses it."""

    def __init__(self, base: str, timeout: float) -> None:
        self.url, self.timeout = httpx.URL(base), timeout

    async def request(self, method: str, path: str, content=None, headers=None) -> httpx.Response:
        return await asyncio.wait_for(self._exchange(method, path, content, headers), self.timeout)

    async def _exchange(self, method, path, content, headers) -> httpx.Response:
        body = content or b""
        fields = {"Host": f"{self.url.host}:{self.url.port}", "Connection": "close"}
        fields |= {"Content-Length": str(len(body))} if content is not None else {}
        fields |= headers or {}
        target = self.url.join(path).raw_path.decode()
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in fields.items()
        )
        reader, writer = await asyncio.open_connection(self.url.host, self.url.port)
        try:
            writer.write(head.encode() + b"\r\n" + body)
            with contextlib.suppress(ConnectionError):  # answered before the body was read
                await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
        return parse_response(raw)


def parse_response(raw: bytes) -> httpx.Response:
    """An HTTP/1.1 answer read to the end of its connection, as an httpx Response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    pairs = [tuple(x.strip() for x in line.split(":", 1)) for line in lines if ":" in line]
    if any(k.lower() == "transfer-encoding" and "chunked" in v for k, v in pairs):
        body = dechunk(body)
    pairs = [(k, v) for k, v in pairs if k.lower() != "transfer-encoding"]
    return httpx.Response(int(status_line.split()[1]), headers=pairs, content=body)


def dechunk(data: bytes) -> bytes:
    """A chunked body, joined."""
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


# Cases whose request cannot be sent as such on a socket: a body longer than its declared
# Content-Length is, on the wire, a short body followed by a malformed next request. They must
# get a 4xx JSON error or a closed connection, and write nothing.
NOT_ON_A_SOCKET = {"too_large-declared_small_sent_over_limit"}


class Hostile:
    """The corpus of tests/contracts/test_hostile.py against the running app: two orgs seeded
    as that test seeds them, and keys with the scopes its cases name."""

    def __init__(self, stack: Stack, orgs: tuple[str, str], keys: dict[str, str]) -> None:
        from tests.contracts import test_hostile as corpus

        self.corpus, self.stack, self.orgs = corpus, stack, orgs
        self.headers = {n: {"Authorization": f"Bearer {k}"} for n, k in keys.items()}
        self.limits = types.SimpleNamespace(
            chatadmin_max_body_bytes=Settings.model_fields["chatadmin_max_body_bytes"].default,
            chatadmin_max_batch=Settings.model_fields["chatadmin_max_batch"].default,
        )
        self.world = None
        self.raw = RawClient(stack.base, 60)

    @classmethod
    async def seeded(cls, stack: Stack, org: str) -> Hostile:
        """Keys (one revoked before its first use) and the seeded world, in `org`-a (and
        `org`-b, the other org)."""
        keys = await asyncio.to_thread(stack.keys, hostile_keys(org))
        by_role = {name.split(":")[1]: key for name, key in keys.items()}
        hostile = cls(stack, (f"{org}-a", f"{org}-b"), by_role)
        hostile.world = await hostile.seed()
        return hostile

    async def seed(self):
        """The world the corpus refers to, made through the API (its share id kept)."""
        async with httpx.AsyncClient(base_url=self.stack.base, timeout=30) as http:
            share_id = None
            for method, path, body, status in SEED:
                r = await http.request(method, API + path, json=body, headers=self.headers["all"])
                if r.status_code != status:
                    raise ScenarioError(f"seeding {method} {path}: {r.status_code} {r.text[:300]}")
                share_id = r.json().get("share_id") if r.content else share_id
        return self.corpus.World(headers=self.headers, share_id=share_id)

    def snapshot(self) -> list:
        """Every document of the two orgs (and every document of no org), as stored."""
        wanted = {"$or": [{"org_id": {"$in": list(self.orgs)}}, {"org_id": {"$exists": False}}]}
        docs = []
        with self.stack.mongo_client() as client:
            for name in self.corpus.COLLECTIONS:
                for d in client[DB_NAME][name].find(wanted):
                    if name == "api_keys":
                        d.pop("last_used_at_ms", None)
                    docs.append((name, str(d["_id"]), repr(sorted(d.items()))))
        return sorted(docs)

    async def run(self, step: int, stop_at: float, progress: Callable[[float], None]) -> dict:
        """Every `step`-th case (and disputed case), four at a time, each checked."""
        before = await asyncio.to_thread(self.snapshot)
        cases = [(c, False) for c in self.corpus.CASES[::step]]
        cases += [(c, True) for c in self.corpus.DISPUTED[::step]]
        wrong, statuses, gate = [], Counter(), asyncio.Semaphore(4)
        async with httpx.AsyncClient(base_url=self.stack.base, timeout=60) as http:

            async def one(case, disputed: bool) -> None:
                async with gate:
                    if time.monotonic() > stop_at:
                        return
                    problem = await self.check(http, case, disputed)
                    statuses[problem[1]] += 1
                    progress(sum(statuses.values()) / len(cases))
                    if problem[0]:
                        wrong.append(f"{case.id}: {problem[0]}")

            await asyncio.gather(*(one(c, d) for c, d in cases))
        after = await asyncio.to_thread(self.snapshot)
        changed = sorted({(n, i) for n, i, _ in set(before) ^ set(after)})
        return {
            "sent": sum(statuses.values()),
            "wanted": len(cases),
            "wrong": wrong,
            "changed": changed,
            "statuses": dict(sorted(statuses.items())),
        }

    async def check(self, http, case, disputed: bool) -> tuple[str, int]:
        """(what is wrong with the answer, or "", its status)."""
        loose = case.id in NOT_ON_A_SOCKET
        try:
            client = self.raw if "Content-Length" in case.headers else http
            for _ in range(PROBE_BUSY_TRIES):  # turned away by the write gate: sent again
                try:
                    r = await self.corpus.send(client, self.world, self.limits, case)
                except httpx.LocalProtocolError:  # a header httpx will not send (`Bearer `)
                    client = self.raw
                    r = await self.corpus.send(client, self.world, self.limits, case)
                if not (r.status_code == 503 and '"busy"' in r.text):
                    break
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))
        except (httpx.HTTPError, OSError, TimeoutError, ValueError, IndexError) as exc:
            return ("" if loose else f"no answer ({type(exc).__name__}: {exc})"), 0
        try:
            if disputed or loose:
                assert 400 <= r.status_code < 500 if loose else r.status_code in (400, 422)
                self.corpus.check_error(r, r.status_code)
            else:
                self.corpus.check_error(r, case.status, case.code)
        except (AssertionError, KeyError, ValueError) as exc:
            got = f"{r.headers.get('content-type')} {r.text[:80]!r}"
            return f"{r.status_code} (want {case.status}) {exc!s:.120} {got}", r.status_code
        return "", r.status_code

    def checks(self, outcome: dict) -> list[Check]:
        """What must hold of a run of the corpus."""
        return [
            Check(
                "every hostile request was answered",
                outcome["sent"] == outcome["wanted"],
                f"{outcome['sent']} of {outcome['wanted']}",
            ),
            Check(
                "every hostile request got its 4xx and JSON error",
                not outcome["wrong"],
                f"{len(outcome['wrong'])}: {'; '.join(outcome['wrong'][:12])}",
            ),
            Check(
                "hostile requests changed nothing",
                not outcome["changed"],
                f"{len(outcome['changed'])} documents: {sample(outcome['changed'])}",
            ),
        ]


# -- the command line -----------------------------------------------------------------------------

SCENARIOS = {  # in the order they run: the database one last, as it kills the server
    "load": scenario_load,
    "worker-kill": scenario_worker_kill,
    "redis": scenario_redis,
    "bad-input": scenario_bad_input,
    "database": scenario_database,
}


async def run(names: list[str], opts: Options, workdir: Path) -> list[Report]:
    """The named scenarios on one stack, in the order of SCENARIOS."""
    reports = []
    with Stack(opts.server, workdir, deadline_s=opts.deadline_s) as stack:
        await asyncio.to_thread(prepare, stack, names)
        for name in (n for n in SCENARIOS if n in names):
            reports.append(await bounded(name, SCENARIOS[name](stack, opts), opts))
            print(reports[-1].render(), flush=True)
    return reports


async def bounded(name: str, scenario: Awaitable[Report], opts: Options) -> Report:
    """A scenario within a hard time limit past its own bounds (the load stops at `limit_s`;
    the spool wait, the reads and `rollup --check` have their own timeouts); a scenario that
    ran out of time or raised gets a failed report saying so, and the next one runs."""
    limit = opts.limit_s + opts.deadline_s + 1200
    started = time.monotonic()
    try:
        return await asyncio.wait_for(scenario, limit)
    except Exception as exc:  # the run goes on: the report says what happened
        what = f"over {limit:.0f} s" if isinstance(exc, TimeoutError) else repr(exc)[:500]
        report = Report(name, "did not finish", [Check("the scenario finished", False, what)])
        report.seconds = time.monotonic() - started
        return report


def parse(argv: list[str] | None) -> tuple[list[str], Options, argparse.Namespace]:
    """The scenarios named, the options, and the arguments."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=100_000, help="distinct message events")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients")
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)}",
    )
    p.add_argument("--server", choices=TEST_SERVERS, default=NX)
    p.add_argument("--batch", default="50-500", help="batch sizes, MIN-MAX")
    p.add_argument("--deadline", type=float, default=60.0, help="a request's deadline, seconds")
    p.add_argument("--outage", type=float, default=5.0, help="seconds the database/Redis are down")
    p.add_argument("--kills", type=int, default=2, help="workers killed in worker-kill")
    p.add_argument("--hostile-step", type=int, default=1, help="every n-th hostile case")
    add_run_args(p, seed=11)
    args = p.parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    lo, hi = (int(x) for x in args.batch.split("-"))
    opts = Options(
        server=args.server,
        messages=args.messages,
        clients=args.clients,
        batch=(lo, hi),
        deadline_s=args.deadline,
        outage_s=args.outage,
        kills=args.kills,
        hostile_step=args.hostile_step,
        seed=args.seed,
    )
    return names, opts, args


async def main_async(names: list[str], opts: Options, args: argparse.Namespace) -> int:
    """Run the scenarios, print a table each, keep the figures; 1 when any difference."""
    info = rep.machine("secantusdb", "uvicorn", "redis")
    print(f"reliability: {', '.join(names)} on {describe(opts)}")
    print(f"  machine   {rep.machine_line(info, opts.server, 'pymongo', 'uvicorn')}", flush=True)
    when = rep.stamp()
    with scratch("chatadmin-reliability-", args.keep_data) as workdir:
        reports = await run(names, opts, workdir)
    failed = [r for r in reports if not r.ok]
    figures = rep.figures_head("reliability.py", info, reports=[r.figures() for r in reports])
    out = rep.write_results(args, "reliability", when, figures)
    print(
        f"\n{len(reports) - len(failed)} of {len(reports)} scenarios held"
        + (f"; FAILED: {', '.join(r.name for r in failed)}" if failed else "")
        + f"\nfigures: {out}"
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """The command line (Ctrl-C and SIGTERM stop the servers)."""
    return run_main(main_async(*parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
