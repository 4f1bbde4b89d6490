#!/usr/bin/env python3
"""Ingestion benchmark: the HTTP API against raw PyMongo and LangChain's MongoDB chat history,
and how the API's ratio to raw PyMongo holds as the database grows.

One run starts ONE nx-27017 server (the embedded default) on a temporary data dir, the app on top
of it (`manage.py runserver` in a subprocess, on a free loopback port), creates an API key with
`manage.py createapikey`, and then, on the same server, for each step of --sizes (default: one
step of --messages):

  (a) API       POST /api/v1/ingest of the step's next slice of batches, --batch message events
                each, --clients concurrent httpx.AsyncClient, each client the only writer of its
                own conversations (so every thread's messages arrive in order), ~--threads-per-
                batch distinct threads in each batch; threads are created by their first message;
  (b) raw       the same stored message documents of that slice (read back from (a)'s database,
                so byte for byte the same) with PyMongo `insert_many`, same batches, same
                concurrency, into a second database whose `chat_messages` has the product's
                indexes; so both databases grow together, step by step.

and after the last step:

  (info) raw    every document once more into a collection with no secondary index;
  (c) LangChain `langchain_mongodb.MongoDBChatMessageHistory.add_messages`, one history per
                thread, same batches and concurrency (threads), into a third database; on the
                first --langchain-messages messages only (whole batches), since it is slow:
                rates are per message, so the ratio stays fair.

It checks (a) (count, gap-free seqs in arrival order on sampled threads, a replayed batch is all
`unchanged`), prints messages/s and nx-27017's CPU per message for each phase and each step,
the ratios and the goals (API >= 0.5 x raw PyMongo at every step, a ratio that does not fall
as the database grows, API >= 10 x LangChain), and writes the figures as JSON under
bench/results/.

Run it with `bash bench/run.sh [ARGS]` (its own virtualenv, bench/.venv, holds langchain-mongodb,
which is not a product dependency), or with any Python that has chatadmin, httpx and
langchain-mongodb installed: `python bench/ingest.py --messages 50000`, or
`python bench/ingest.py --sizes 50000,200000`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/ingest.py` from a checkout
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from pymongo import AsyncMongoClient, MongoClient  # noqa: E402

from bench.common import data as words  # noqa: E402
from bench.common.cli import add_run_args, add_size_args, parse, run_main  # noqa: E402
from bench.common.report import machine, say, stamp, verdict, write_results  # noqa: E402
from bench.common.servers import NO_RATE_LIMITS, scratch, server_pid  # noqa: E402
from bench.common.timing import Meter, percentile  # noqa: E402
from chatadmin.indexes import declared_indexes  # noqa: E402
from chatadmin.models import Message, Thread  # noqa: E402
from chatadmin.testservers import NX, AppServer, start_test_server  # noqa: E402

GOAL_RAW = 0.5  # API >= 0.5 x raw PyMongo, at every step
GOAL_LANGCHAIN = 10.0  # API >= 10 x LangChain
GROWTH_NOISE = 0.95  # "does not fall": each step's ratio >= 0.95 x the step before's
OTHER_LOAD_WARN = 10.0  # % of the machine used by other processes that makes a phase noisy
ORG = "bench-org"
MESSAGES_COLLECTION = Message.Settings.name
THREADS_COLLECTION = Thread.Settings.name

Plans = list[list[list[dict]]]  # per client, its batches of events (or documents)

# -- the data ------------------------------------------------------------------------------------


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
            ticker = rng.choice(words.TICKERS)
            msgs.append({"role": "user", "user_id": conv.user_id, "content": words.text(rng, 1, 3)})
            if rng.random() < 0.35:
                name, make_input = rng.choice(words.TOOLS)
                tool_id = f"toolu_{i:06d}_{turn}"
                said = words.text(rng, 1, 2)
                call = {"type": "tool_use", "id": tool_id, "name": name}
                call["input"] = make_input(rng, ticker)
                msgs.append(
                    {
                        "role": "assistant",
                        "content": [{"type": "text", "text": said}, call],
                        "ai_metadata": words.ai_metadata(rng, 300, 2500),
                    }
                )
                failed = rng.random() < 0.1
                result = (
                    "upstream market data timed out"
                    if failed
                    else words.price_rows(rng, ticker, 40)
                )
                block = {"type": "tool_result", "tool_use_id": tool_id, "is_error": failed}
                msgs.append({"role": "tool", "content": [{**block, "content": result}]})
            msgs.append(
                {
                    "role": "assistant",
                    "content": words.text(rng, 3, 16),
                    "ai_metadata": words.ai_metadata(rng, 800, 4000),
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
) -> Plans:
    """Per client, its batches of events.

    Conversation i belongs to client i % clients, which is its only writer, so a thread's
    messages are sent in order. A client keeps `threads_per_batch` conversations open and takes
    their next messages round robin, replacing each finished conversation by its next one: a
    batch holds about `threads_per_batch` distinct threads, as when a backend flushes what many
    live conversations said in the last moments.
    """
    plans: Plans = []
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


def subset(plans: Plans, limit: int) -> Plans:
    """The first whole batches, round robin over the clients, until `limit` messages."""
    return step_plans(plans, [limit, count(plans)])[0]


def count(plans: Plans) -> int:
    """Messages in all the batches."""
    return sum(len(b) for batches in plans for b in batches)


def step_plans(plans: Plans, sizes: list[int]) -> list[Plans]:
    """The batches of each step: whole batches, round robin over the clients (each client's in
    order), until the step's size is reached; the last step takes the rest."""
    steps: list[Plans] = [[[] for _ in plans] for _ in sizes]
    step, sent = 0, 0
    for k in range(max((len(p) for p in plans), default=0)):
        for c, batches in enumerate(plans):
            if k < len(batches):
                while step < len(sizes) - 1 and sent >= sizes[step]:
                    step += 1
                steps[step][c].append(batches[k])
                sent += len(batches[k])
    return steps


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

    @property
    def nx_ms_per_message(self) -> float:
        """nx-27017's CPU per message, in ms."""
        return 1000 * self.cpu.get("nx", 0.0) / self.messages if self.messages else 0.0

    @classmethod
    def of(cls, name: str, messages: int, meter: Meter, **kw) -> Phase:
        return cls(name, messages, meter.seconds, meter.cpu, **kw)

    def summary(self) -> dict:
        out = {
            "name": self.name,
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "messages_per_second": round(self.rate, 1),
            "cpu_seconds": {k: round(v, 2) for k, v in self.cpu.items()},
            "nx_cpu_ms_per_message": round(self.nx_ms_per_message, 3),
            "note": self.note,
        }
        if self.latencies_ms:
            lat = self.latencies_ms
            tenth = max(1, len(lat) // 10)
            out["batch_latency_ms"] = {
                "p50": round(statistics.median(lat), 1),
                "p95": round(percentile(lat, 0.95), 1),
                "max": round(max(lat), 1),
                # in completion order: does a batch get slower as the database grows?
                "first_tenth_mean": round(statistics.mean(lat[:tenth]), 1),
                "last_tenth_mean": round(statistics.mean(lat[-tenth:]), 1),
            }
        return out


def combine(name: str, phases: list[Phase], note: str = "") -> Phase:
    """The steps of one phase as one: counts, seconds and CPU added up, the machine's shares
    weighted by time, latencies in order."""
    seconds = sum(ph.seconds for ph in phases)
    cpu: dict[str, float] = {}
    for ph in phases:
        for k, v in ph.cpu.items():
            weight = ph.seconds / seconds if k.endswith("_pct") and seconds else 1.0
            cpu[k] = cpu.get(k, 0.0) + v * weight
    latencies = [x for ph in phases for x in ph.latencies_ms]
    return Phase(name, sum(ph.messages for ph in phases), seconds, cpu, latencies, note)


@dataclass
class Step:
    """One step of the growth: the API's slice and the raw insert of the same documents."""

    size: int  # messages in each database after the step
    api: Phase
    raw: Phase

    @property
    def ratio(self) -> float:
        return self.api.rate / self.raw.rate if self.raw.rate else 0.0


async def api_phase(
    base_url: str, key: str, plans: Plans, meter: Meter
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


async def stored_documents(uri: str, db_name: str, plans: Plans) -> Plans:
    """The stored message documents of the events in `plans`, in the same batches."""
    ids = [e["id"] for batches in plans for b in batches for e in b]
    stored: dict[str, dict] = {}
    reader = AsyncMongoClient(uri)
    try:
        coll = reader[db_name][MESSAGES_COLLECTION]
        for i in range(0, len(ids), 5000):
            query = {"org_id": ORG, "message_id": {"$in": ids[i : i + 5000]}}
            async for d in coll.find(query):
                stored[d["message_id"]] = d
    finally:
        await reader.close()
    missing = [i for i in ids if i not in stored]
    if missing:
        raise RuntimeError(f"{len(missing)} of {len(ids)} messages not stored, e.g. {missing[:3]}")
    return [[[stored[e["id"]] for e in b] for b in batches] for batches in plans]


async def raw_phase(
    uri: str, db_name: str, doc_plans: Plans, meter: Meter, indexes: bool, create: bool = True
) -> None:
    """`insert_many` of each client's batches, the clients concurrently; `create` makes the
    collection first, with the product's indexes or (`indexes` false) with `_id` only."""
    client = AsyncMongoClient(uri)
    try:
        coll = client[db_name][MESSAGES_COLLECTION]
        if create and indexes:
            await coll.create_indexes(declared_indexes(Message))
        elif create:
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


def langchain_phase(uri: str, db_name: str, plans: Plans, meter: Meter) -> int:
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


def report(
    args, info, data, steps, api, raw, raw_plain, lc, checks, statuses, problems, wall
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
    if len(steps) > 1:
        p(f"  steps     {', '.join(f'{s.size:,}' for s in steps)} messages in each database")
    p("")
    p(
        f"  {'phase':<46} {'messages':>8} {'seconds':>7} {'msg/s':>7} {'nx ms/msg':>9}   "
        "CPU s: nx / app / bench   machine busy / iowait / others"
    )
    phases = [ph for ph in (api, raw, raw_plain, lc) if ph is not None]
    for ph in phases:
        cpu = ph.cpu
        p(
            f"  {ph.name:<46} {ph.messages:>8,} {ph.seconds:>7.1f} {ph.rate:>7,.0f} "
            f"{ph.nx_ms_per_message:>9.2f}   "
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
    if len(steps) > 1:
        p("")
        p("  as the databases grow (each step: the API's next slice, then raw of the same docs)")
        p(
            f"    {'in each db':>10} {'API msg/s':>9} {'raw msg/s':>9} {'API/raw':>7} "
            f"{'nx ms/msg API':>13} {'nx ms/msg raw':>13} {'app ms/msg':>10} "
            f"{'others (a) / (b)':>17}"
        )
        for s in steps:
            app_ms = 1000 * s.api.cpu.get("app", 0.0) / s.api.messages if s.api.messages else 0
            p(
                f"    {s.size:>10,} {s.api.rate:>9,.0f} {s.raw.rate:>9,.0f} {s.ratio:>7.2f} "
                f"{s.api.nx_ms_per_message:>13.2f} {s.raw.nx_ms_per_message:>13.2f} "
                f"{app_ms:>10.2f} {s.api.cpu['other_processes_pct']:>8.0f}% / "
                f"{s.raw.cpu['other_processes_pct']:.0f}%"
            )
    p("")
    ratio_raw = api.rate / raw.rate if raw.rate else 0.0
    ratio_lc = api.rate / lc.rate if lc and lc.rate else None
    goals: dict[str, str] = {}
    p("  ratios and goals")
    p(
        f"    API / raw PyMongo = {ratio_raw:.2f}   goal >= {GOAL_RAW}   "
        f"{verdict(ratio_raw >= GOAL_RAW)}"
    )
    goals[f"api_over_raw>={GOAL_RAW}"] = verdict(ratio_raw >= GOAL_RAW)
    if len(steps) > 1:
        for s in steps:
            ok = s.ratio >= GOAL_RAW
            p(f"      at {s.size:>9,}:     {s.ratio:.2f}   goal >= {GOAL_RAW}   {verdict(ok)}")
            goals[f"api_over_raw>={GOAL_RAW} at {s.size}"] = verdict(ok)
        holds = all(b.ratio >= GROWTH_NOISE * a.ratio for a, b in itertools.pairwise(steps))
        p(
            f"    API / raw as the database grows: "
            f"{' -> '.join(f'{s.ratio:.2f}' for s in steps)}   goal: does not fall (each step "
            f">= {GROWTH_NOISE} x the one before)   {verdict(holds)}"
        )
        goals["api_over_raw does not fall"] = verdict(holds)
    if ratio_lc is None:
        p(f"    API / LangChain   = n/a    goal >= {GOAL_LANGCHAIN:g}    MISS (not measured)")
    else:
        p(
            f"    API / LangChain   = {ratio_lc:.2f}   goal >= {GOAL_LANGCHAIN:g}    "
            f"{verdict(ratio_lc >= GOAL_LANGCHAIN)}"
        )
    goals["api_over_langchain>=10"] = verdict(ratio_lc is not None and ratio_lc >= GOAL_LANGCHAIN)
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
        "data": data,
        "phases": [ph.summary() for ph in phases],
        "steps": [
            {"size": s.size, "api": s.api.summary(), "raw": s.raw.summary(), "ratio": s.ratio}
            for s in steps
        ],
        "ratios": {
            "api_over_raw": round(ratio_raw, 3),
            "api_over_langchain": round(ratio_lc, 3) if ratio_lc else None,
        },
        "goals": goals,
        "checks": [{"check": n, "ok": ok, "detail": d} for n, ok, d in checks],
        "statuses": statuses,
        "problems": problems[:10],
    }
    return "\n".join(lines), result


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_args(
        ap,
        50_000,
        "messages to ingest",
        "measure API and raw at each of these database sizes in one run, both databases "
        "growing together, e.g. 50000,200000",
    )
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
        "into DIR (a folder per step with several); needs py-spy (pip install py-spy into "
        "bench/.venv)",
    )
    add_run_args(ap)
    args = parse(ap, argv)
    for name in ("messages", "batch", "clients", "threads_per_batch"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.langchain_messages < 0:
        ap.error("--langchain-messages must not be negative")
    return args


def describe(convs: list[Conversation], plans: Plans) -> dict:
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


async def main_async(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    when = stamp()
    db_api, db_raw, db_plain, db_lc = (f"bench_{when}_{s}" for s in ("api", "raw", "plain", "lc"))
    info = machine("langchain-mongodb", "langchain-core", "httpx")
    say(f"generating {args.messages:,} messages ...")
    convs = make_conversations(args.messages, args.seed)
    plans = plan_batches(convs, args.clients, args.batch, args.threads_per_batch)
    data = describe(convs, plans)
    slices = step_plans(plans, args.sizes)
    with scratch("chatadmin-bench-", args.keep_data) as work:
        mongo = start_test_server(NX, work / "nx")
        app: AppServer | None = None
        try:
            say(f"nx-27017 at {mongo.uri} (data in {work})")
            env = {"PYTHONUNBUFFERED": "1", **NO_RATE_LIMITS}
            app = AppServer(mongo.uri, db_api, work / "app", env=env)
            app.start(timeout=90)
            if not app.wait_ready(90):
                raise RuntimeError(f"the app did not become ready: {app.log()[-2000:]}")
            say(f"app at {app.base} (db {db_api})")
            key = app.create_api_key(ORG, "ingest,read")
            pids = {"nx": server_pid(mongo), "app": server_pid(app), "bench": os.getpid()}

            steps: list[Step] = []
            statuses: dict[str, int] = {}
            problems: list[str] = []
            doc_plans: Plans = [[] for _ in plans]
            in_db = 0
            for i, events in enumerate(slices):
                n = count(events)
                in_db += n
                label = f" (step {i + 1} of {len(slices)}, to {in_db:,})" if len(slices) > 1 else ""
                say(f"(a) API: {n:,} messages, {sum(map(len, events))} batches{label} ...")
                meter = Meter(pids)
                profilers = []
                if args.profile:
                    folder = args.profile / f"step{i + 1}" if len(slices) > 1 else args.profile
                    profilers = start_profilers(folder, pids)
                try:
                    latencies, got, trouble = await api_phase(app.base, key, events, meter)
                finally:
                    stop_profilers(profilers)
                for k, v in got.items():
                    statuses[k] = statuses.get(k, 0) + v
                problems += trouble
                api = Phase.of("(a) API POST /api/v1/ingest", n, meter, latencies_ms=latencies)
                say(f"    {api.rate:,.0f} messages/s, nx {api.nx_ms_per_message:.2f} ms/msg")

                say("(b) raw PyMongo insert_many ...")
                docs = await stored_documents(mongo.uri, db_api, events)
                meter = Meter(pids)
                await raw_phase(mongo.uri, db_raw, docs, meter, indexes=True, create=i == 0)
                raw = Phase.of("(b) raw PyMongo insert_many, product indexes", count(docs), meter)
                say(f"    {raw.rate:,.0f} messages/s, nx {raw.nx_ms_per_message:.2f} ms/msg")
                steps.append(Step(in_db, api, raw))
                for mine, more in zip(doc_plans, docs, strict=True):
                    mine += more

            api = combine("(a) API POST /api/v1/ingest", [s.api for s in steps])
            raw = combine(
                "(b) raw PyMongo insert_many, product indexes",
                [s.raw for s in steps],
                note=f"{len(declared_indexes(Message))} indexes as declared on "
                f"{MESSAGES_COLLECTION}",
            )
            say("verifying (a) ...")
            checks = await verify_api(
                mongo.uri,
                db_api,
                convs,
                data["messages"],
                app.base,
                key,
                plans[0][len(plans[0]) // 2],
                random.Random(args.seed + 1),
            )
            app.stop()  # idle from here on; its CPU is not wanted in the other phases
            pids["app"] = None

            raw_plain = None
            if not args.no_plain_raw:
                say("(info) raw PyMongo insert_many without secondary indexes ...")
                plain_plans = [[[dict(d) for d in b] for b in batches] for batches in doc_plans]
                meter = Meter(pids)
                await raw_phase(mongo.uri, db_plain, plain_plans, meter, indexes=False)
                raw_plain = Phase.of(
                    "(info) raw PyMongo insert_many, _id index only", count(plain_plans), meter
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
                    lc = Phase.of(
                        "(c) LangChain MongoDBChatMessageHistory",
                        count(lc_plans),
                        meter,
                        note="add_messages = one insert_one per message; one history per thread",
                    )
                    if stored_lc != lc.messages:
                        problems.append(f"LangChain stored {stored_lc} of {lc.messages} messages")
                    say(f"    {lc.rate:,.0f} messages/s")

            text, result = report(
                args,
                info,
                data,
                steps,
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
            out = write_results(args, "ingest", when, result)
            print(f"  figures written to {out}", flush=True)
            failed = (
                any(not ok for _, ok, _ in checks) or statuses.get("created") != data["messages"]
            )
            return 1 if failed else 0
        finally:
            if app is not None:
                app.stop()
            mongo.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
