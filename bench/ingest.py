#!/usr/bin/env python3
"""Ingestion benchmark: the HTTP API against raw PyMongo and LangChain's MongoDB chat history.

One run starts ONE nx-27017 server (the embedded default) on a temporary data dir, the app on top
of it (`manage.py runserver` in a subprocess, on a free loopback port), creates an API key with
`manage.py createapikey`, and then, on the same server:

  (a) API       POST /api/v1/ingest, batches of --batch message events, --clients concurrent
                httpx.AsyncClient, each client the only writer of its own conversations
                (so every thread's messages arrive in order), ~--threads-per-batch distinct
                threads in each batch; threads are created by their first message;
  (b) raw       the same stored message documents (read back from (a)'s database, so byte for
                byte the same) with PyMongo `insert_many`, same batches, same concurrency, into a
                second database whose `chat_messages` has the product's indexes; and, for
                information only, once more into a collection with no secondary index;
  (c) LangChain `langchain_mongodb.MongoDBChatMessageHistory.add_messages`, one history per
                thread, same batches and concurrency (threads), into a third database; on the
                first --langchain-messages messages only (whole batches), since it is slow:
                rates are per message, so the ratio stays fair.

It checks (a) (count, gap-free seqs in arrival order on sampled threads, a replayed batch is all
`unchanged`), prints messages/s for each, the ratios and the goals (API >= 0.5 x raw PyMongo,
API >= 10 x LangChain), and writes the figures as JSON under bench/results/.

Run it with `bash bench/run.sh [ARGS]` (its own virtualenv, bench/.venv, holds langchain-mongodb,
which is not a product dependency), or with any Python that has chatadmin, httpx and
langchain-mongodb installed: `python bench/ingest.py --messages 50000`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/ingest.py` from a checkout
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from pymongo import AsyncMongoClient, MongoClient  # noqa: E402

from chatadmin.embedded import EmbeddedMongo, free_port  # noqa: E402
from chatadmin.indexes import declared_indexes  # noqa: E402
from chatadmin.models import Message, Thread  # noqa: E402

GOAL_RAW = 0.5  # API >= 0.5 x raw PyMongo
GOAL_LANGCHAIN = 10.0  # API >= 10 x LangChain
OTHER_LOAD_WARN = 10.0  # % of the machine used by other processes that makes a phase noisy
ORG = "bench-org"
MESSAGES_COLLECTION = Message.Settings.name
THREADS_COLLECTION = Thread.Settings.name

# -- the data ------------------------------------------------------------------------------------

WORDS = (
    "the a of to and in is that for on with as by at from this it be are was an or which "
    "volatility return price ticker market index portfolio risk drawdown sharpe beta alpha "
    "earnings revenue margin growth quarter year month week day close open high low volume "
    "trend average moving correlation benchmark sector exposure hedge position weight "
    "dividend yield spread rate inflation forecast model estimate range signal momentum "
    "analysis compute result chart table summary compare over last since between against "
    "why how what which show me please explain could would should higher lower than"
).split()
TICKERS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "JPM", "XOM", "KO", "SPY"]
TOOLS = [
    ("get_price_history", lambda r, t: {"ticker": t, "lookback_days": r.choice([7, 30, 90, 365])}),
    ("compute_volatility", lambda r, t: {"ticker": t, "window": r.choice([20, 60]), "annual": 1}),
    ("run_sql", lambda r, t: {"query": f"select * from prices where ticker = '{t}' limit 100"}),
    ("search_filings", lambda r, t: {"ticker": t, "form": r.choice(["10-K", "10-Q"]), "k": 5}),
]
MODELS = ["claude-sonnet-4", "claude-haiku-4", "gpt-4.1-mini"]


def _sentence(rng: random.Random, low: int, high: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    if rng.random() < 0.5:
        words.insert(rng.randrange(len(words)), rng.choice(TICKERS))
    return " ".join(words).capitalize() + rng.choice([".", "?", "."])


def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(_sentence(rng, 6, 18) for _ in range(rng.randint(low, high)))


def _ai(rng: random.Random, low: int, high: int) -> dict:
    inp, out = rng.randint(low, high), rng.randint(low // 10, high // 4)
    return {
        "model": rng.choice(MODELS),
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": inp + out,
        "response_ms": rng.randint(300, 6000),
        "temperature": 0.2,
    }


@dataclass
class Conversation:
    thread_id: str
    user_id: str
    events: list[dict] = field(default_factory=list)  # message events, in conversation order


def make_conversations(n_messages: int, seed: int) -> list[Conversation]:
    """Conversations totalling exactly n_messages message events.

    Each turn: a user question (with user_id; the first one creates the thread), then either a
    plain assistant answer, or (about a third of turns) an assistant text + tool_use block, a
    `tool` message with its tool_result block (sometimes an error), and the final answer.
    Assistant messages carry ai_metadata with tokens; 1 to 8 turns per conversation.
    """
    rng = random.Random(seed)
    convs: list[Conversation] = []
    total = 0
    while total < n_messages:
        i = len(convs)
        conv = Conversation(thread_id=f"bt-{i:06d}", user_id=f"user-{rng.randrange(300):03d}")
        convs.append(conv)
        msgs: list[dict] = []
        for turn in range(rng.randint(1, 8)):
            ticker = rng.choice(TICKERS)
            msgs.append({"role": "user", "user_id": conv.user_id, "content": _text(rng, 1, 3)})
            if rng.random() < 0.35:
                name, make_input = rng.choice(TOOLS)
                tool_id = f"toolu_{i:06d}_{turn}"
                msgs.append(
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "text", "text": _text(rng, 1, 2)},
                            {
                                "type": "tool_use",
                                "id": tool_id,
                                "name": name,
                                "input": make_input(rng, ticker),
                            },
                        ],
                        "ai_metadata": _ai(rng, 300, 2500),
                    }
                )
                failed = rng.random() < 0.1
                result = (
                    "upstream market data timed out"
                    if failed
                    else json.dumps(
                        {
                            "ticker": ticker,
                            "rows": [
                                [d, round(rng.uniform(50, 500), 2)]
                                for d in range(rng.randint(5, 40))
                            ],
                        }
                    )
                )
                msgs.append(
                    {
                        "role": "tool",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": tool_id,
                                "is_error": failed,
                                "content": result,
                            }
                        ],
                    }
                )
            msgs.append(
                {
                    "role": "assistant",
                    "content": _text(rng, 3, 16),
                    "ai_metadata": _ai(rng, 800, 4000),
                }
            )
        for j, data in enumerate(msgs[: n_messages - total]):
            conv.events.append(
                {
                    "type": "message",
                    "id": f"{conv.thread_id}-m{j:03d}",
                    "data": {"thread_id": conv.thread_id, **data},
                }
            )
        total += len(conv.events)
    return convs


def plan_batches(
    convs: list[Conversation], clients: int, batch: int, threads_per_batch: int
) -> list[list[list[dict]]]:
    """Per client, its batches of events.

    Conversation i belongs to client i % clients, which is its only writer, so a thread's
    messages are sent in order. A client keeps `threads_per_batch` conversations open and takes
    their next messages round robin, replacing each finished conversation by its next one: a
    batch holds about `threads_per_batch` distinct threads, as when a backend flushes what many
    live conversations said in the last moments.
    """
    plans: list[list[list[dict]]] = []
    for c in range(clients):
        pending = [list(conv.events) for conv in convs[c::clients]]
        pending.reverse()
        active: list[list[dict]] = []
        batches: list[list[dict]] = []
        current: list[dict] = []
        while pending or active:
            while len(active) < threads_per_batch and pending:
                active.append(pending.pop())
            still: list[list[dict]] = []
            for events in active:
                current.append(events.pop(0))
                if len(current) == batch:
                    batches.append(current)
                    current = []
                if events:
                    still.append(events)
            active = still
        if current:
            batches.append(current)
        plans.append(batches)
    return plans


def subset(plans: list[list[list[dict]]], limit: int) -> list[list[list[dict]]]:
    """The first whole batches, round robin over the clients, until `limit` messages."""
    out: list[list[list[dict]]] = [[] for _ in plans]
    count = 0
    for k in range(max((len(p) for p in plans), default=0)):
        for c, batches in enumerate(plans):
            if k < len(batches) and count < limit:
                out[c].append(batches[k])
                count += len(batches[k])
    return out


def count(plans: list[list[list[dict]]]) -> int:
    return sum(len(b) for batches in plans for b in batches)


# -- processes -----------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


class App:
    """`manage.py runserver` in a subprocess, on the given MongoDB and database."""

    def __init__(self, mongodb_uri: str, db_name: str, workdir: Path):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MONGODB_", "CHATADMIN_")) and k != "REDIS_URL"
        }
        self.env.update(
            MONGODB_URI=mongodb_uri,
            MONGODB_DB_NAME=db_name,
            CHATADMIN_SECRET_KEY=secrets.token_urlsafe(48),
            CHATADMIN_AUTO_MIGRATE="1",
            CHATADMIN_LOG_LEVEL="WARNING",
            CHATADMIN_DATA_DIR=str(workdir / "app-data"),
            PYTHONUNBUFFERED="1",
        )
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "app.log"

    def manage(self, *args: str) -> list[str]:
        cmd = [sys.executable, str(ROOT / "manage.py"), *args]
        # cwd is the scratch dir, so no stray .env is read
        done = subprocess.run(
            cmd, env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.strip().splitlines()

    def start(self, timeout: float = 90.0) -> None:
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runserver", "--port", str(self.port)],
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the app did not become ready in {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- phases --------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    messages: int
    seconds: float
    cpu: dict[str, float]
    latencies_ms: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def summary(self) -> dict:
        out = {
            "name": self.name,
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "messages_per_second": round(self.rate, 1),
            "cpu_seconds": {k: round(v, 2) for k, v in self.cpu.items()},
            "note": self.note,
        }
        if self.latencies_ms:
            lat = sorted(self.latencies_ms)
            tenth = max(1, len(lat) // 10)
            out["batch_latency_ms"] = {
                "p50": round(statistics.median(lat), 1),
                "p95": round(lat[min(len(lat) - 1, int(len(lat) * 0.95))], 1),
                "max": round(lat[-1], 1),
                # in completion order: does a batch get slower as the database grows?
                "first_tenth_mean": round(statistics.mean(self.latencies_ms[:tenth]), 1),
                "last_tenth_mean": round(statistics.mean(self.latencies_ms[-tenth:]), 1),
            }
        return out


def machine_ticks() -> tuple[int, int, int]:
    """(busy, iowait, total) clock ticks of the whole machine since boot, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0, 0
    idle, iowait = values[3], values[4] if len(values) > 4 else 0
    total = sum(values[:8])
    return total - idle - iowait, iowait, total


class Meter:
    """Wall time, the CPU seconds of each process of interest and of the machine, over a phase."""

    def __init__(self, pids: dict[str, int | None]):
        self.pids = pids

    def __enter__(self) -> Meter:
        self.cpu0 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self.ticks0 = machine_ticks()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.cpu = {k: cpu_seconds(p) - self.cpu0[k] for k, p in self.pids.items()}
        busy, iowait, total = (b - a for a, b in zip(self.ticks0, machine_ticks(), strict=True))
        ours = sum(self.cpu.values())
        self.cpu["machine_busy_pct"] = 100.0 * busy / total if total else 0.0
        self.cpu["machine_iowait_pct"] = 100.0 * iowait / total if total else 0.0
        # CPU that processes other than ours used meanwhile: the figures are only clean when ~0
        other = max(0.0, busy / CLK_TCK - ours)
        self.cpu["other_processes_pct"] = 100.0 * other / (total / CLK_TCK) if total else 0.0


async def api_phase(
    base_url: str, key: str, plans: list[list[list[dict]]], meter: Meter
) -> tuple[list[float], dict[str, int], list[str]]:
    """Each client sends its batches one after another; the clients run concurrently."""
    bodies = [[json.dumps({"events": b}).encode() for b in batches] for batches in plans]
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    problems: list[str] = []
    clients = [
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=httpx.Timeout(300.0))
        for _ in plans
    ]

    async def run(http: httpx.AsyncClient, mine: list[bytes]) -> None:
        for body in mine:
            t0 = time.perf_counter()
            r = await http.post("/api/v1/ingest", content=body)
            latencies.append((time.perf_counter() - t0) * 1000)
            if r.status_code not in (200, 207):
                problems.append(f"HTTP {r.status_code}: {r.text[:300]}")
                continue
            for res in r.json()["results"]:
                statuses[res["status"]] = statuses.get(res["status"], 0) + 1
                if res["status"] == "error" and len(problems) < 10:
                    problems.append(f"event {res['id']}: {res['error']}")

    try:
        for http in clients:  # open the connections before the clock starts
            (await http.get("/healthz")).raise_for_status()
        with meter:
            await asyncio.gather(*(run(h, m) for h, m in zip(clients, bodies, strict=True)))
    finally:
        for http in clients:
            await http.aclose()
    return latencies, statuses, problems


async def raw_phase(
    uri: str, db_name: str, doc_plans: list[list[list[dict]]], meter: Meter, indexes: bool
) -> None:
    client = AsyncMongoClient(uri)
    try:
        coll = client[db_name][MESSAGES_COLLECTION]
        if indexes:
            await coll.create_indexes(declared_indexes(Message))
        else:
            await client[db_name].create_collection(MESSAGES_COLLECTION)
        await client.admin.command("ping")

        async def run(batches: list[list[dict]]) -> None:
            for docs in batches:
                await coll.insert_many(docs, ordered=False)

        with meter:
            await asyncio.gather(*(run(b) for b in doc_plans))
    finally:
        await client.close()


def to_langchain(event: dict):
    """A chatadmin message event as the LangChain message an app would keep."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    data = event["data"]
    content = data["content"]
    if data["role"] == "user":
        return HumanMessage(content=content, id=event["id"])
    if data["role"] == "tool":
        block = content[0]
        return ToolMessage(
            content=block["content"],
            tool_call_id=block["tool_use_id"],
            status="error" if block["is_error"] else "success",
            id=event["id"],
        )
    meta = data.get("ai_metadata") or {}
    usage = {
        "input_tokens": meta.get("input_tokens", 0),
        "output_tokens": meta.get("output_tokens", 0),
        "total_tokens": meta.get("total_tokens", 0),
    }
    response = {"model_name": meta.get("model"), "response_ms": meta.get("response_ms")}
    tool_calls = []
    if isinstance(content, list):
        tool_calls = [
            {"name": b["name"], "args": b["input"], "id": b["id"], "type": "tool_call"}
            for b in content
            if b["type"] == "tool_use"
        ]
    return AIMessage(
        content=content,
        tool_calls=tool_calls,
        usage_metadata=usage,
        response_metadata=response,
        id=event["id"],
    )


def langchain_phase(uri: str, db_name: str, plans: list[list[list[dict]]], meter: Meter) -> int:
    """One MongoDBChatMessageHistory per thread; each client thread appends its own batches.

    The library's `add_messages` is langchain-core's default, one `add_message` (an
    `insert_one`) per message; its constructor creates the SessionId index, so only the first
    history does that (best case for LangChain: one shared MongoClient, one index build).
    """
    from langchain_mongodb import MongoDBChatMessageHistory

    converted = [
        [[(e["data"]["thread_id"], to_langchain(e)) for e in batch] for batch in batches]
        for batches in plans
    ]
    client = MongoClient(uri)
    try:
        MongoDBChatMessageHistory(
            None, "warm-up", database_name=db_name, client=client, create_index=True
        ).clear()

        def run(batches: list[list[tuple]]) -> None:
            histories: dict[str, MongoDBChatMessageHistory] = {}
            for batch in batches:
                by_thread: dict[str, list] = {}
                for tid, msg in batch:
                    by_thread.setdefault(tid, []).append(msg)
                for tid, msgs in by_thread.items():
                    history = histories.get(tid)
                    if history is None:
                        history = histories[tid] = MongoDBChatMessageHistory(
                            None, tid, database_name=db_name, client=client, create_index=False
                        )
                    history.add_messages(msgs)

        with meter, ThreadPoolExecutor(max_workers=len(converted)) as pool:
            for f in [pool.submit(run, batches) for batches in converted]:
                f.result()
        return client[db_name]["message_store"].count_documents({})
    finally:
        client.close()


def start_profilers(out_dir: Path, pids: dict[str, int | None]) -> list[subprocess.Popen]:
    """py-spy on nx-27017 and the app, stopped (and written) by stop_profilers."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for name in ("nx", "app"):
        if pids.get(name):
            procs.append(
                subprocess.Popen(
                    [
                        exe,
                        "record",
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "--nonblocking",
                        "--pid",
                        str(pids[name]),
                        "-o",
                        str(out_dir / f"{name}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    time.sleep(1.0)  # let them attach
    return procs


def stop_profilers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- checks --------------------------------------------------------------------------------------


async def verify_api(
    uri: str,
    db_name: str,
    convs: list[Conversation],
    expected: int,
    base_url: str,
    key: str,
    replay: list[dict],
    rng: random.Random,
) -> list[tuple[str, bool, str]]:
    """(check, ok, detail) for: the count, seqs on sampled threads, a replayed batch."""
    checks: list[tuple[str, bool, str]] = []
    client = AsyncMongoClient(uri)
    try:
        db = client[db_name]
        stored = await db[MESSAGES_COLLECTION].count_documents({"org_id": ORG})
        checks.append(
            ("stored messages = N", stored == expected, f"{stored:,} stored, {expected:,} sent")
        )
        longest = max(convs, key=lambda c: len(c.events))
        sample = [longest, *rng.sample(convs, min(7, len(convs)))]
        bad = []
        for conv in sample:
            msgs = await (
                db[MESSAGES_COLLECTION]
                .find({"org_id": ORG, "thread_id": conv.thread_id}, {"seq": 1, "message_id": 1})
                .sort("seq", 1)
                .to_list(None)
            )
            seqs = [m["seq"] for m in msgs]
            ids = [m["message_id"] for m in msgs]
            thread = await db[THREADS_COLLECTION].find_one(
                {"org_id": ORG, "thread_id": conv.thread_id}
            )
            k = len(conv.events)
            if seqs != list(range(k)):
                bad.append(f"{conv.thread_id}: seqs {seqs[:5]}... (want 0..{k - 1})")
            elif ids != [e["id"] for e in conv.events]:
                bad.append(f"{conv.thread_id}: seqs not in arrival order")
            elif thread is None or thread.get("message_count") != k or thread.get("next_seq") != k:
                bad.append(f"{conv.thread_id}: thread counters {thread and thread.get('next_seq')}")
        checks.append(
            (
                f"seqs 0..k-1, no gap, in order ({len(sample)} threads)",
                not bad,
                "; ".join(bad) or f"longest {len(longest.events)} messages",
            )
        )
    finally:
        await client.close()
    async with httpx.AsyncClient(base_url=base_url, timeout=300.0) as http:
        r = await http.post(
            "/api/v1/ingest",
            json={"events": replay},
            headers={"authorization": f"Bearer {key}"},
        )
    got = [x["status"] for x in r.json().get("results", [])] if r.status_code == 200 else []
    ok = r.status_code == 200 and len(got) == len(replay) and set(got) == {"unchanged"}
    checks.append(
        (
            "replayed batch is all unchanged",
            ok,
            f"HTTP {r.status_code}, {got.count('unchanged')}/{len(replay)} unchanged",
        )
    )
    client = AsyncMongoClient(uri)
    try:
        after = await client[db_name][MESSAGES_COLLECTION].count_documents({"org_id": ORG})
    finally:
        await client.close()
    checks.append(("replay wrote nothing", after == expected, f"{after:,} stored after replay"))
    return checks


# -- report --------------------------------------------------------------------------------------


def machine() -> dict:
    def sh(*cmd: str) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        return ""

    mem = sh("free", "-h").splitlines()
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {
        "nproc": sh("nproc"),
        "cpu": cpu,
        "memory": mem[1].split()[1] if len(mem) > 1 else "",
        "python": platform.python_version(),
        "os": platform.platform(),
        "nx-27017": ver("nx-27017"),
        "pymongo": ver("pymongo"),
        "langchain-mongodb": ver("langchain-mongodb"),
        "langchain-core": ver("langchain-core"),
        "httpx": ver("httpx"),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "commit": sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        # uncommitted product changes are measured too (the package is installed editable)
        "product_tree": "dirty"
        if sh("git", "-C", str(ROOT), "status", "--porcelain", "--", "chatadmin", "pyproject.toml")
        else "clean",
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(
    args, info, data, api, raw, raw_plain, lc, checks, statuses, problems, wall
) -> tuple[str, dict]:
    lines = []
    p = lines.append
    p("")
    p("chatadmin ingestion benchmark")
    p(
        f"  machine   {info['nproc']} cores ({info['cpu']}), {info['memory']} RAM, "
        f"Python {info['python']}, nx-27017 {info['nx-27017']}, pymongo {info['pymongo']}, "
        f"langchain-mongodb {info['langchain-mongodb']}, {info['date']}"
    )
    p(f"  code      commit {info['commit']}, product tree {info['product_tree']}")
    p(
        f"  data      {data['messages']:,} messages in {data['threads']:,} threads "
        f"(avg {data['messages_per_thread']:.1f}, max {data['max_per_thread']}), "
        f"{data['tool_use_messages']:,} with tool_use, {data['tool_result_messages']:,} "
        f"tool_result, avg event {data['avg_event_bytes']:,} B of JSON"
    )
    p(
        f"  shape     {data['batches']} batches of <= {args.batch} events, {args.clients} "
        f"concurrent clients, ~{data['threads_per_batch_mean']:.0f} distinct threads per batch"
    )
    p("")
    p(
        f"  {'phase':<46} {'messages':>8} {'seconds':>7} {'msg/s':>7}   "
        "CPU s: nx / app / bench   machine busy / iowait / others"
    )
    phases = [ph for ph in (api, raw, raw_plain, lc) if ph is not None]
    for ph in phases:
        cpu = ph.cpu
        p(
            f"  {ph.name:<46} {ph.messages:>8,} {ph.seconds:>7.1f} {ph.rate:>7,.0f}   "
            f"{cpu.get('nx', 0):5.1f} / {cpu.get('app', 0):4.1f} / {cpu.get('bench', 0):4.1f}"
            f"        {cpu['machine_busy_pct']:3.0f}% / {cpu['machine_iowait_pct']:2.0f}% / "
            f"{cpu['other_processes_pct']:2.0f}%"
        )
    noisy = [ph for ph in phases if ph.cpu["other_processes_pct"] > OTHER_LOAD_WARN]
    for ph in noisy:
        p(
            f"  WARNING: other processes used {ph.cpu['other_processes_pct']:.0f}% of the machine "
            f"during {ph.name.split(')')[0]}): its figure is not clean; run again on a quiet "
            "machine"
        )
    if api.latencies_ms:
        s = api.summary()["batch_latency_ms"]
        p(
            f"  API batch latency: p50 {s['p50']:.0f} ms, p95 {s['p95']:.0f} ms, "
            f"max {s['max']:.0f} ms; mean of the first tenth {s['first_tenth_mean']:.0f} ms, "
            f"of the last tenth {s['last_tenth_mean']:.0f} ms"
        )
    if lc is not None and lc.messages < api.messages:
        p(
            f"  LangChain was measured on the first {lc.messages:,} of {api.messages:,} "
            "messages (--langchain-messages); every rate is per message, so the ratio is fair."
        )
    p("")
    ratio_raw = api.rate / raw.rate if raw.rate else 0.0
    ratio_lc = api.rate / lc.rate if lc and lc.rate else None
    p("  ratios and goals")
    p(
        f"    API / raw PyMongo = {ratio_raw:.2f}   goal >= {GOAL_RAW}   "
        f"{verdict(ratio_raw >= GOAL_RAW)}"
    )
    if ratio_lc is None:
        p(f"    API / LangChain   = n/a    goal >= {GOAL_LANGCHAIN:g}    MISS (not measured)")
    else:
        p(
            f"    API / LangChain   = {ratio_lc:.2f}   goal >= {GOAL_LANGCHAIN:g}    "
            f"{verdict(ratio_lc >= GOAL_LANGCHAIN)}"
        )
    if raw_plain is not None:
        p(
            f"    (info) API / raw PyMongo without secondary indexes = "
            f"{api.rate / raw_plain.rate:.2f}"
        )
    p("")
    p("  correctness of (a)")
    p(f"    results: {', '.join(f'{k} {v:,}' for k, v in sorted(statuses.items()))}")
    for name, ok, detail in checks:
        p(f"    {'ok  ' if ok else 'FAIL'} {name}: {detail}")
    for prob in problems[:10]:
        p(f"    problem: {prob}")
    p(f"  total run {wall:.0f} s")
    result = {
        "command": " ".join(["bench/ingest.py", *sys.argv[1:]]),
        "machine": info,
        "args": vars(args),
        "data": data,
        "phases": [ph.summary() for ph in (api, raw, raw_plain, lc) if ph is not None],
        "ratios": {
            "api_over_raw": round(ratio_raw, 3),
            "api_over_langchain": round(ratio_lc, 3) if ratio_lc else None,
        },
        "goals": {
            "api_over_raw>=0.5": verdict(ratio_raw >= GOAL_RAW),
            "api_over_langchain>=10": verdict(ratio_lc is not None and ratio_lc >= GOAL_LANGCHAIN),
        },
        "checks": [{"check": n, "ok": ok, "detail": d} for n, ok, d in checks],
        "statuses": statuses,
        "problems": problems[:10],
    }
    return "\n".join(lines), result


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=50_000, help="messages to ingest (50000)")
    ap.add_argument("--batch", type=int, default=500, help="events per batch (500)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    ap.add_argument(
        "--threads-per-batch",
        type=int,
        default=100,
        help="conversations each client keeps open, so ~distinct threads per batch (100)",
    )
    ap.add_argument(
        "--langchain-messages",
        type=int,
        default=5_000,
        help="messages for the LangChain phase (whole batches; 0 skips it; default 5000)",
    )
    ap.add_argument(
        "--no-plain-raw",
        action="store_true",
        help="skip the informational raw insert into a collection without secondary indexes",
    )
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record py-spy profiles (collapsed stacks) of nx-27017 and the app during (a) "
        "into DIR; needs py-spy (pip install py-spy into bench/.venv)",
    )
    ap.add_argument("--seed", type=int, default=27017, help="random seed of the data (27017)")
    ap.add_argument("--keep-data", action="store_true", help="keep the temporary data dir")
    ap.add_argument(
        "--results-dir",
        type=Path,
        default=ROOT / "bench" / "results",
        help="where the JSON figures go (bench/results)",
    )
    args = ap.parse_args(argv)
    for name in ("messages", "batch", "clients", "threads_per_batch"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.langchain_messages < 0:
        ap.error("--langchain-messages must not be negative")
    return args


def describe(convs: list[Conversation], plans: list[list[list[dict]]]) -> dict:
    events = [e for c in convs for e in c.events]
    sizes = [len(json.dumps(e)) for e in events[:5000]]
    per_batch = [len({e["data"]["thread_id"] for e in b}) for batches in plans for b in batches]
    return {
        "messages": len(events),
        "threads": len(convs),
        "messages_per_thread": len(events) / len(convs),
        "max_per_thread": max(len(c.events) for c in convs),
        "tool_use_messages": sum(
            isinstance(e["data"]["content"], list)
            and any(b["type"] == "tool_use" for b in e["data"]["content"])
            for e in events
        ),
        "tool_result_messages": sum(e["data"]["role"] == "tool" for e in events),
        "avg_event_bytes": int(statistics.mean(sizes)),
        "batches": len(per_batch),
        "threads_per_batch_mean": statistics.mean(per_batch),
    }


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def main_async(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    db_api, db_raw, db_plain, db_lc = (f"bench_{stamp}_{s}" for s in ("api", "raw", "plain", "lc"))
    info = machine()
    say(f"generating {args.messages:,} messages ...")
    convs = make_conversations(args.messages, args.seed)
    plans = plan_batches(convs, args.clients, args.batch, args.threads_per_batch)
    data = describe(convs, plans)
    work = Path(tempfile.mkdtemp(prefix="chatadmin-bench-"))
    mongo = EmbeddedMongo(work / "nx")
    app: App | None = None
    try:
        mongo.start(reuse=False)
        say(f"nx-27017 at {mongo.uri} (data in {work})")
        app = App(mongo.uri, db_api, work)
        app.start()
        say(f"app at {app.base_url} (db {db_api})")
        key = app.manage("createapikey", "--org", ORG, "--scopes", "ingest,read", "--name", "bench")
        key = key[-1].strip()
        pids = {
            "nx": mongo.proc.pid if mongo.proc else None,
            "app": app.proc.pid if app.proc else None,
            "bench": os.getpid(),
        }

        say(f"(a) API: {data['messages']:,} messages, {data['batches']} batches ...")
        meter = Meter(pids)
        profilers = start_profilers(args.profile, pids) if args.profile else []
        try:
            latencies, statuses, problems = await api_phase(app.base_url, key, plans, meter)
        finally:
            stop_profilers(profilers)
        api = Phase(
            "(a) API POST /api/v1/ingest", data["messages"], meter.seconds, meter.cpu, latencies
        )
        say(f"    {api.rate:,.0f} messages/s; verifying ...")
        checks = await verify_api(
            mongo.uri,
            db_api,
            convs,
            data["messages"],
            app.base_url,
            key,
            plans[0][len(plans[0]) // 2],
            random.Random(args.seed + 1),
        )
        app.stop()  # idle from here on; its CPU is not wanted in the other phases
        pids["app"] = None

        say("(b) raw PyMongo insert_many ...")
        reader = AsyncMongoClient(mongo.uri)
        try:
            stored = {
                d["message_id"]: d
                async for d in reader[db_api][MESSAGES_COLLECTION].find({"org_id": ORG})
            }
        finally:
            await reader.close()
        doc_plans = [[[stored[e["id"]] for e in b] for b in batches] for batches in plans]
        meter = Meter(pids)
        await raw_phase(mongo.uri, db_raw, doc_plans, meter, indexes=True)
        raw = Phase(
            "(b) raw PyMongo insert_many, product indexes",
            count(doc_plans),
            meter.seconds,
            meter.cpu,
            note=f"{len(declared_indexes(Message))} indexes as declared on {MESSAGES_COLLECTION}",
        )
        say(f"    {raw.rate:,.0f} messages/s")
        raw_plain = None
        if not args.no_plain_raw:
            plain_plans = [[[dict(d) for d in b] for b in batches] for batches in doc_plans]
            meter = Meter(pids)
            await raw_phase(mongo.uri, db_plain, plain_plans, meter, indexes=False)
            raw_plain = Phase(
                "(info) raw PyMongo insert_many, _id index only",
                count(plain_plans),
                meter.seconds,
                meter.cpu,
            )
            say(f"    {raw_plain.rate:,.0f} messages/s without secondary indexes")

        lc = None
        if args.langchain_messages:
            lc_plans = subset(plans, args.langchain_messages)
            say(f"(c) LangChain MongoDBChatMessageHistory: {count(lc_plans):,} messages ...")
            try:
                meter = Meter(pids)
                stored_lc = await asyncio.to_thread(
                    langchain_phase, mongo.uri, db_lc, lc_plans, meter
                )
            except ImportError as exc:
                say(f"    skipped: {exc} (run bench/run.sh, which installs langchain-mongodb)")
            else:
                lc = Phase(
                    "(c) LangChain MongoDBChatMessageHistory",
                    count(lc_plans),
                    meter.seconds,
                    meter.cpu,
                    note="add_messages = one insert_one per message; one history per thread",
                )
                if stored_lc != lc.messages:
                    problems.append(f"LangChain stored {stored_lc} of {lc.messages} messages")
                say(f"    {lc.rate:,.0f} messages/s")

        text, result = report(
            args,
            info,
            data,
            api,
            raw,
            raw_plain,
            lc,
            checks,
            statuses,
            problems,
            time.perf_counter() - t_start,
        )
        print(text, flush=True)
        args.results_dir.mkdir(parents=True, exist_ok=True)
        out = args.results_dir / f"ingest-{stamp}.json"
        result["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"  figures written to {out}", flush=True)
        failed = any(not ok for _, ok, _ in checks) or statuses.get("created") != data["messages"]
        return 1 if failed else 0
    finally:
        if app is not None:
            app.stop()
        mongo.stop()
        if not args.keep_data:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
