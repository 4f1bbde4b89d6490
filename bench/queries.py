#!/usr/bin/env python3
"""Seed 001's query targets at scale: the product's reads against the raw PyMongo query that
returns the same documents, on the same server, in the same run.

Seed 001 promises five reads on a large database: a user's 1,000 sessions newest first
(< 50 ms), a session's 500 messages in order (< 20 ms), a user's 1,000 analyses (< 30 ms), a
session's executions (< 15 ms) and executions by status (< 40 ms). This measures each through
the functions the API uses for it (`chatadmin.services`) and, beside it, the one raw query
that returns the same documents, so the ratio says what the service layer costs over the
database itself (goal: service <= 1.5 x raw), and the absolute figures stand beside the seed's
targets.

One run starts ONE server (`--server`, nx-27017 by default; throwaway storage), opens a fresh
database in-process with the product's migrations (its indexes), and seeds it fast with raw
`insert_many` of documents built by the product's models (`bench.common.seeding`; threads,
analyses and executions through `Thread(...)`, `Analysis(...)`, `Execution(...)` and
`stamped().storage_fields()`):

  messages    --messages in --threads threads (5 orgs, 500 users, 90 days, as
              bench/admin_list.py); one of them ("the long session") has 500 messages;
  threads     one per planned thread, counters in step with its messages (count, next seq,
              last activity); one user of org-01 ("user-heavy") owns 1,000 of them;
  analyses    one per 10 messages, user-heavy has 1,000 of them; each with its execution;
  executions  one per analysis: 88 % success, 9 % failed, 2 % pending, 1 % running; the long
              session has one per 10 of its messages.

Then each query is run --repeats times after a warm-up, service and raw alternately; each
service read is the function its API endpoint calls, asked for all the rows in one page:

  sessions     threads.list_threads(org, user_id=..., limit=1000) (`GET /threads`) against
               find({org, user, status in live}).sort(last_activity desc, thread_id desc);
  messages     messages.list_messages(org, thread, limit=500) (`GET /threads/{id}`) against
               find(visible(org, thread)).sort(seq);
  analyses     analyses.find_analyses(org, user_id=..., limit=1000) (`GET /analyses`) against
               find({org, user}).sort(created_at desc, analysis_id desc);
  executions   executions.list_executions(org, thread_id=...) and (org, status="running"),
  by session,  limit 1000 (`GET /executions`), against find({org, thread}) and
  by status    find({org, status}), sorted by created_at desc, execution_id desc.

It prints p50 / p99 of each side, the ratio, the rows and the round trips each side sent
(find and getMore commands), the seed's target, the machine's load, and writes the figures as
JSON under bench/results/.

    .venv/bin/python bench/queries.py --messages 20000          # a quick look
    .venv/bin/python bench/queries.py                           # 1,000,000 messages
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/queries.py` from a checkout
    sys.path.insert(0, str(ROOT))

from pymongo import monitoring  # noqa: E402

from bench.common import data, seeding  # noqa: E402
from bench.common import report as rep  # noqa: E402
from bench.common.cli import add_plan_args, add_run_args, run_main  # noqa: E402
from bench.common.servers import database_server, open_database, scratch, server_pid, settings_for  # noqa: E402
from bench.common.timing import Meter, Timing, settle  # noqa: E402
from chatadmin.models import Analysis, Execution, Message, Thread  # noqa: E402
from chatadmin.models.base import doc_key  # noqa: E402
from chatadmin.models.thread import LIVE_STATUSES, THREAD_LIST_EXCLUDE  # noqa: E402
from chatadmin.services import analyses, executions, messages, threads  # noqa: E402
from chatadmin.testservers import NX, TEST_SERVERS  # noqa: E402

GOAL_RATIO = 1.5  # service p50 <= 1.5 x raw p50
HEAVY_ORG, HEAVY_USER = "org-01", "user-heavy"
HEAVY_SESSIONS, HEAVY_ANALYSES, LONG_SESSION = 1_000, 1_000, 500
STATUSES = (("success", 0.88), ("failed", 0.09), ("pending", 0.02), ("running", 0.01))
TEMPLATES = 300

# -- round trips ---------------------------------------------------------------------------------


class Commands(monitoring.CommandListener):
    """Counts the find and getMore commands sent while `on` (every client of the process)."""

    def __init__(self) -> None:
        self.on, self.count = False, 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on and event.command_name in ("find", "getMore", "aggregate"):
            self.count += 1

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


COMMANDS = Commands()
monitoring.register(COMMANDS)  # before any client exists: listeners apply to later clients

# -- the data ------------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What the seeding made, for choosing the queries' targets."""

    plans: list[seeding.ThreadPlan]
    long: seeding.ThreadPlan
    last_ms: dict[str, int] = field(default_factory=dict)  # thread -> its newest message
    figures: dict = field(default_factory=dict)


def plan(
    args: argparse.Namespace, rng: random.Random, end_ms: int
) -> tuple[list, seeding.ThreadPlan]:
    """The threads: those of bench/admin_list.py, then the long session (thread 0, 500
    messages) and user-heavy's 1,000 sessions (threads 1 to 1,000, in org-01)."""
    plans = seeding.plan_threads(
        args.messages, args.threads, args.orgs, args.users, args.days, rng, end_ms
    )
    long = plans[0]
    long.size = LONG_SESSION
    long.start_ms = end_ms - 3 * 86_400_000
    for p in plans[1 : HEAVY_SESSIONS + 1]:
        p.org_id, p.user_id = HEAVY_ORG, HEAVY_USER
    sizes = [p.size for p in plans]
    seeding.resize(sizes, args.messages, rng, keep=frozenset({0}))
    for p, size in zip(plans, sizes, strict=True):
        p.size = size
    return plans, long


def tracked(docs: Iterator[dict], last_ms: dict[str, int]) -> Iterator[dict]:
    """The documents, noting each thread's newest message time on the way."""
    for doc in docs:
        last_ms[doc["thread_id"]] = max(last_ms.get(doc["thread_id"], 0), doc["created_at_ms"])
        yield doc


def _at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def thread_documents(seeded: Seeded, rng: random.Random) -> Iterator[dict]:
    """A stored thread per plan, its counters in step with its messages; user-heavy's are all
    live, 2 % of the others are deleted and 8 % archived."""
    for p in seeded.plans:
        last = seeded.last_ms.get(p.thread_id, p.start_ms)
        roll = rng.random()
        status = "active"
        if p.user_id != HEAVY_USER and roll < 0.02:
            status = "deleted"
        elif roll < 0.10:
            status = "archived"
        thread = Thread(
            org_id=p.org_id, user_id=p.user_id, thread_id=p.thread_id, status=status,
            title=data.sentence(rng, 3, 8)[:500], created_at=_at(p.start_ms),
            message_count=p.size, next_seq=p.size, last_message_at_ms=last,
            last_activity_ms=last, total_tokens=rng.randint(100, 4000) * p.size,
            tags=rng.sample(["equities", "rates", "fx", "risk", "earnings"], rng.randint(0, 2)),
        )  # fmt: skip
        yield thread.stamped().storage_fields()


def analysis_templates(rng: random.Random) -> list[dict]:
    """Stored analyses as the product builds them (`Analysis(...)`), to copy."""
    out = []
    for _ in range(TEMPLATES):
        ticker = rng.choice(data.TICKERS)
        analysis = Analysis(
            org_id="tpl-org",
            title=data.sentence(rng, 4, 9)[:200],
            description=data.text(rng, 1, 3),
            question=data.sentence(rng),
            category=rng.choice(["volatility", "returns", "fundamentals", "risk"]),
            result={
                "description": data.sentence(rng),
                "body": [
                    {"key": f"{ticker} {k}", "value": round(rng.uniform(0, 100), 2)}
                    for k in ("vol", "return", "sharpe", "drawdown")[: rng.randint(1, 4)]
                ],
            },
            parameters={"ticker": ticker, "window": rng.choice([20, 60, 250])},
            mcp_calls=[name for name, _ in rng.sample(data.TOOLS, rng.randint(1, 3))],
            generated_script=f"prices = get('{ticker}')\nresult = analyse(prices)\n",
            execution_ms=rng.randint(50, 5000),
            tags=rng.sample(["equities", "rates", "fx", "risk"], rng.randint(0, 2)),
        )
        out.append(analysis.stamped().storage_fields())
    return out


def execution_templates(rng: random.Random) -> dict[str, list[dict]]:
    """Stored executions of each status as the product builds them (`Execution(...)`)."""
    out: dict[str, list[dict]] = {s: [] for s, _ in STATUSES}
    for status, _ in STATUSES:
        for _ in range(TEMPLATES // 4):
            ticker = rng.choice(data.TICKERS)
            ms = rng.randint(50, 5000)
            done = status in ("success", "failed")
            run = Execution(
                org_id="tpl-org", status=status, question=data.sentence(rng),
                generated_script=f"prices = get('{ticker}')\nresult = analyse(prices)\n",
                parameters={"ticker": ticker}, execution_ms=ms if done else None,
                result={"rows": rng.randint(1, 500)} if status == "success" else None,
                error="upstream market data timed out" if status == "failed" else None,
                mcp_calls=[name for name, _ in rng.sample(data.TOOLS, rng.randint(1, 2))],
                memory_used_mb=round(rng.uniform(20, 400), 1), cpu_percent=rng.randint(1, 99),
            )  # fmt: skip
            out[status].append(run.stamped().storage_fields())
    return out


def analysis_links(seeded: Seeded, count: int, rng: random.Random) -> list[seeding.ThreadPlan]:
    """The thread of each analysis (and its execution): user-heavy's 1,000 first, then one per
    10 messages of the long session, then threads at random."""
    heavy = [p for p in seeded.plans if p.user_id == HEAVY_USER]
    links = [rng.choice(heavy) for _ in range(min(HEAVY_ANALYSES, count))]
    links += [seeded.long] * min(LONG_SESSION // 10, count - len(links))
    others = [p for p in seeded.plans if p.user_id != HEAVY_USER and p is not seeded.long]
    links += [rng.choice(others) for _ in range(count - len(links))]
    return links


def analysis_and_execution_documents(seeded: Seeded, count: int, rng: random.Random):
    """(analyses, executions): `count` of each, one execution per analysis, in its thread."""
    a_tpl, e_tpl = analysis_templates(rng), execution_templates(rng)
    names, weights = zip(*STATUSES, strict=True)
    found, runs = [], []
    for i, p in enumerate(analysis_links(seeded, count, rng)):
        ms = seeded.last_ms.get(p.thread_id, p.start_ms) - rng.randint(0, 600_000)
        seq = rng.randrange(max(1, p.size))
        ids = {
            "org_id": p.org_id, "user_id": p.user_id, "thread_id": p.thread_id,
            "message_id": f"{p.thread_id}-m{seq:04d}", "analysis_id": f"an-{i:07d}",
            "execution_id": f"ex-{i:07d}", "created_at": _at(ms), "created_at_ms": ms,
            "updated_at_ms": ms,
        }  # fmt: skip
        found.append({**rng.choice(a_tpl), **ids, "_id": doc_key(p.org_id, ids["analysis_id"])})
        status = rng.choices(names, weights)[0]
        run = {**rng.choice(e_tpl[status]), **ids, "_id": doc_key(p.org_id, ids["execution_id"])}
        if status != "pending":
            run["started_at_ms"] = ms + 50
        if status in ("success", "failed"):
            run["completed_at_ms"] = ms + 50 + (run["execution_ms"] or 0)
        runs.append(run)
    return found, runs


async def seed(args: argparse.Namespace, database, rng: random.Random, end_ms: int) -> Seeded:
    """Every collection the queries read, with raw insert_many of the models' documents."""
    plans, long = plan(args, rng, end_ms)
    seeded = Seeded(plans, long)
    db = database.db
    templates = seeding.message_templates(rng)
    rep.say(f"seeding {args.messages:,} messages in {len(plans):,} threads ...")
    stream = tracked(seeding.all_messages(plans, templates, rng), seeded.last_ms)
    done = await seeding.insert_batches(db[Message.Settings.name], stream, args.batch, "messages")
    seeded.figures["messages"] = done
    done = await seeding.insert_batches(
        db[Thread.Settings.name], thread_documents(seeded, rng), args.batch, "threads"
    )
    seeded.figures["threads"] = done
    count = args.analyses if args.analyses is not None else max(args.messages // 10, 2_000)
    found, runs = analysis_and_execution_documents(seeded, count, rng)
    for model, docs in ((Analysis, found), (Execution, runs)):
        done = await seeding.insert_batches(
            db[model.Settings.name], docs, args.batch, model.Settings.name
        )
        seeded.figures[model.Settings.name] = done
    return seeded


# -- the queries ---------------------------------------------------------------------------------


@dataclass
class Query:
    """One of seed 001's reads: the product's way, the raw way, and what the seed promises."""

    name: str
    target_ms: float
    service: object  # async () -> list of ids, in the order returned
    raw: object  # async () -> list of ids
    detail: str
    expected: int  # rows the seed's query returns
    note: str = ""
    # more raw variants, for information: (label, async () -> list of ids)
    extras: list[tuple[str, object]] = field(default_factory=list)


async def all_pages(read, key: str) -> list:
    """The `key` of every item of a paged service read, page after page (one call when a page
    holds them all); `read(cursor)` returns a Page."""
    ids, cursor = [], None
    while True:
        page = await read(cursor)
        ids += [getattr(item, key) for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids


async def sessions_service() -> list:
    """user-heavy's live threads through `threads.list_threads`, 1,000 a page."""

    def read(cursor):
        return threads.list_threads(
            HEAVY_ORG, user_id=HEAVY_USER, limit=HEAVY_SESSIONS, cursor=cursor
        )

    return await all_pages(read, "thread_id")


SESSIONS_QUERY = {"org_id": HEAVY_ORG, "user_id": HEAVY_USER, "status": {"$in": LIVE_STATUSES}}
SESSIONS_SORT = [("last_activity_ms", -1), ("thread_id", -1)]
SESSIONS_PROJECTION = {name: 0 for name in THREAD_LIST_EXCLUDE}


async def sessions_raw() -> list:
    coll = Thread.get_pymongo_collection()
    docs = await coll.find(SESSIONS_QUERY, SESSIONS_PROJECTION).sort(SESSIONS_SORT).to_list()
    return [d["thread_id"] for d in docs]


def session_messages(long: seeding.ThreadPlan) -> tuple:
    """The long session's messages, through `messages.list_messages` and raw."""

    def read(cursor):
        return messages.list_messages(
            long.org_id, long.thread_id, limit=LONG_SESSION, cursor=cursor
        )

    async def service() -> list:
        return await all_pages(read, "message_id")

    async def raw() -> list:
        coll = Message.get_pymongo_collection()
        query = messages.visible(long.org_id, long.thread_id)
        return [d["message_id"] for d in await coll.find(query).sort("seq", 1).to_list()]

    return service, raw


async def analyses_service() -> list:
    """user-heavy's analyses through `analyses.find_analyses`, 1,000 a page."""

    def read(cursor):
        return analyses.find_analyses(
            HEAVY_ORG, user_id=HEAVY_USER, limit=HEAVY_ANALYSES, cursor=cursor
        )

    return await all_pages(read, "analysis_id")


async def analyses_raw() -> list:
    cursor = (
        Analysis.get_pymongo_collection()
        .find({"org_id": HEAVY_ORG, "user_id": HEAVY_USER})
        .sort([("created_at_ms", -1), ("analysis_id", -1)])
    )
    return [d["analysis_id"] for d in await cursor.to_list()]


async def execution_reads(org_id: str, **filters: str) -> tuple:
    """`executions.list_executions(org_id, **filters)` 1,000 a page, the raw find of the same
    query and order, its row count and the query."""
    query = {"org_id": org_id, **filters}
    coll = Execution.get_pymongo_collection()
    rows = await coll.count_documents(query)

    def read(cursor):
        return executions.list_executions(org_id, limit=1000, cursor=cursor, **filters)

    async def service() -> list:
        return await all_pages(read, "execution_id")

    async def raw() -> list:
        found = coll.find(query).sort([("created_at_ms", -1), ("execution_id", -1)])
        return [d["execution_id"] for d in await found.to_list()]

    return service, raw, rows, query


async def make_queries(seeded: Seeded) -> list[Query]:
    long = seeded.long
    msg_service, msg_raw = session_messages(long)
    ex_service, ex_raw, ex_rows, ex_query = await execution_reads(
        long.org_id, thread_id=long.thread_id
    )
    st_service, st_raw, st_rows, st_query = await execution_reads(HEAVY_ORG, status="running")
    return [
        Query(
            "a user's sessions, newest first",
            50,
            sessions_service,
            sessions_raw,
            f"{HEAVY_USER} of {HEAVY_ORG}: threads.list_threads(limit={HEAVY_SESSIONS})",
            HEAVY_SESSIONS,
            note="one call",
        ),
        Query(
            "a session's messages in order",
            20,
            msg_service,
            msg_raw,
            f"{long.thread_id} of {long.org_id}: messages.list_messages(limit={LONG_SESSION})",
            LONG_SESSION,
            note="one call",
        ),
        Query(
            "a user's analyses",
            30,
            analyses_service,
            analyses_raw,
            f"{HEAVY_USER} of {HEAVY_ORG}: analyses.find_analyses(limit={HEAVY_ANALYSES})",
            HEAVY_ANALYSES,
            note="one call",
        ),
        Query(
            "a session's executions",
            15,
            ex_service,
            ex_raw,
            f"executions.list_executions {ex_query}",
            ex_rows,
            note="one call",
        ),
        Query(
            "executions by status",
            40,
            st_service,
            st_raw,
            f"executions.list_executions {st_query}",
            st_rows,
            note="one call: the org's running executions (the API is per org)",
        ),
    ]


@dataclass
class Measured:
    """Both sides of one query: timings, rows, round trips, and whether they agree."""

    service: Timing
    raw: Timing
    rows: tuple[int, int]
    trips: tuple[int, int]
    same: bool
    extras: list[tuple[str, Timing, int, int]] = field(default_factory=list)  # + rows, trips


async def timed(fn) -> tuple[float, list, int]:
    """(ms, result, find/getMore commands sent) of one call."""
    COMMANDS.count, COMMANDS.on = 0, True
    try:
        t0 = time.perf_counter()
        result = await fn()
        return (time.perf_counter() - t0) * 1000, result, COMMANDS.count
    finally:
        COMMANDS.on = False


async def measure_query(q: Query, repeats: int, nx_pid: int | None) -> Measured:
    """A warm-up of each side, then `repeats` of each, alternately."""
    _, got, trips_s = await timed(q.service)
    _, want, trips_r = await timed(q.raw)
    svc, raw = Timing(), Timing()
    for _ in range(repeats):
        for fn, timing in ((q.service, svc), (q.raw, raw)):
            ms, _, _ = await timed(fn)
            timing.samples.append(ms)
    m = Measured(svc, raw, (len(got), len(want)), (trips_s, trips_r), got == want)
    for label, fn in q.extras:
        _, rows, trips = await timed(fn)
        timing = Timing()
        for _ in range(repeats):
            timing.samples.append((await timed(fn))[0])
        m.extras.append((label, timing, len(rows), trips))
    await settle(nx_pid, 30)
    return m


# -- report --------------------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    return "-" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.1f}")


def report(args, info, load, seeded: Seeded, queries, measured, counts) -> tuple[str, dict]:
    lines: list[str] = []
    p = lines.append
    p("")
    p(f"chatadmin seed 001 queries: the product's reads against raw PyMongo ({args.server})")
    p(f"  machine   {rep.machine_line(info, 'nx-27017', 'pymongo', 'beanie')}")
    p(
        f"  load      other processes used {load['others_cores_avg']:.2f} of {info['nproc']} "
        f"cores on average during the run (load average {load['loadavg_start']} at start, "
        f"{load['loadavg_end']} at end)"
    )
    p(
        f"  data      {counts['messages']:,} messages, {counts['threads']:,} threads, "
        f"{counts['analyses']:,} analyses, {counts['executions']:,} executions; seeded with "
        "insert_many at "
        + ", ".join(
            f"{name} {f['count'] / f['seconds']:,.0f}/s" for name, f in seeded.figures.items()
        )
    )
    p(f"  repeats   {args.repeats} of each side after a warm-up, alternately; p99 = nearest rank")
    p("")
    p(
        f"  {'query':<32} {'rows svc/raw':>12} {'service p50 / p99':>18} {'raw p50 / p99':>16} "
        f"{'svc/raw':>7} {'target':>7} {'trips':>7}"
    )
    goals: dict[str, str] = {}
    out = []
    for q, m in zip(queries, measured, strict=True):
        ratio = m.service.p50 / m.raw.p50 if m.raw.p50 else None
        p(
            f"  {q.name:<32} {f'{m.rows[0]:,}/{m.rows[1]:,}':>12} "
            f"{f'{_ms(m.service.p50)} / {_ms(m.service.p99)}':>18} "
            f"{f'{_ms(m.raw.p50)} / {_ms(m.raw.p99)}':>16} "
            f"{f'{ratio:.2f}x' if ratio else '-':>7} {f'< {q.target_ms:g}':>7} "
            f"{f'{m.trips[0]}/{m.trips[1]}':>7}"
        )
        for label, t, rows, trips in m.extras:
            p(
                f"  {f'  ({label})':<32} {f'-/{rows:,}':>12} {'':>18} "
                f"{f'{_ms(t.p50)} / {_ms(t.p99)}':>16} {'':>7} {'':>7} {f'-/{trips}':>7}"
            )
        complete = m.rows[0] == q.expected
        goals[f"{q.name}: service <= {GOAL_RATIO} x raw"] = rep.verdict(
            ratio is not None and ratio <= GOAL_RATIO and m.same
        )
        goals[f"{q.name}: service p50 < {q.target_ms:g} ms for {q.expected:,} rows"] = rep.verdict(
            complete and m.service.p50 is not None and m.service.p50 < q.target_ms
        )
        out.append(
            {
                "name": q.name,
                "detail": q.detail,
                "note": q.note,
                "target_ms": q.target_ms,
                "expected_rows": q.expected,
                "rows": {"service": m.rows[0], "raw": m.rows[1]},
                "same_documents": m.same,
                "round_trips": {"service": m.trips[0], "raw": m.trips[1]},
                "service": m.service.summary(),
                "raw": m.raw.summary(),
                "extras": [
                    {"label": label, "rows": rows, "round_trips": trips, **t.summary()}
                    for label, t, rows, trips in m.extras
                ],
                "ratio_p50": ratio,
            }
        )
    p("  (ms; rows = documents each side returned; trips = find + getMore commands per call)")
    p("")
    p("  what each side ran")
    for q, m in zip(queries, measured, strict=True):
        p(f"    {q.name:<32} {q.detail}")
        if q.note:
            p(f"    {'':<32} {q.note}")
        if not m.same:
            p(f"    {'':<32} WARNING: the two sides returned different documents or order")
    lines += rep.goal_lines(goals)
    result = rep.figures_head(
        "queries.py",
        info,
        load=load,
        data=counts,
        seed={k: {n: round(v, 1) for n, v in f.items()} for k, f in seeded.figures.items()},
        queries=out,
        goals=goals,
    )
    return "\n".join(lines), result


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=TEST_SERVERS, default=NX, help="server (nx-27017)")
    ap.add_argument("--messages", type=int, default=1_000_000, help="messages (1000000)")
    ap.add_argument(
        "--threads", type=int, default=None, help="threads (messages / 50, at least 2,000)"
    )
    ap.add_argument(
        "--analyses",
        type=int,
        default=None,
        help="analyses, and as many executions (messages / 10, at least 2,000)",
    )
    add_plan_args(ap)
    ap.add_argument("--repeats", type=int, default=21, help="timed calls of each side (21)")
    add_run_args(ap)
    args = ap.parse_args(argv)
    if args.threads is None:
        args.threads = max(args.messages // 50, 2 * HEAVY_SESSIONS)
    minimum = LONG_SESSION + args.threads
    if args.messages < minimum or args.threads <= HEAVY_SESSIONS:
        ap.error(f"need more than {HEAVY_SESSIONS} threads and {minimum:,} messages at least")
    if args.analyses is not None and args.analyses < HEAVY_ANALYSES + LONG_SESSION // 10:
        ap.error(f"--analyses must be at least {HEAVY_ANALYSES + LONG_SESSION // 10}")
    return args


async def main_async(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    when = rep.stamp()
    info = rep.machine()
    rng = random.Random(args.seed)
    end_ms = seeding.this_hour_ms()
    with scratch("chatadmin-bench-queries-", args.keep_data) as work:
        server = database_server(args.server, work / "db")
        database = None
        try:
            nx_pid = server_pid(server)
            meter = Meter({"server": nx_pid, "bench": os.getpid()})
            rep.say(f"{args.server} at {server.uri} (data in {work}); load average {meter.load0}")
            database = await open_database(
                settings_for(server.uri, f"bench_queries_{when.replace('-', '_')}")
            )
            seeded = await seed(args, database, rng, end_ms)
            counts = {
                name: await database.db[model.Settings.name].estimated_document_count()
                for name, model in (
                    ("messages", Message),
                    ("threads", Thread),
                    ("analyses", Analysis),
                    ("executions", Execution),
                )
            }
            await settle(nx_pid)
            queries = await make_queries(seeded)
            measured = []
            for q in queries:
                rep.say(f"{q.name} ...")
                m = await measure_query(q, args.repeats, nx_pid)
                rep.say(
                    f"  service p50 {_ms(m.service.p50)} ms, raw {_ms(m.raw.p50)} ms, rows "
                    f"{m.rows[0]}/{m.rows[1]}, trips {m.trips[0]}/{m.trips[1]}"
                )
                measured.append(m)
            load = meter.stop().load
            text, result = report(args, info, load, seeded, queries, measured, counts)
            result["total_seconds"] = round(time.perf_counter() - t_start, 1)
            print(text, flush=True)
            out = rep.write_results(args, "queries", when, result)
            print(f"  figures written to {out}", flush=True)
            print(f"  total run {time.perf_counter() - t_start:.0f} s", flush=True)
            return 0 if all(m.same for m in measured) else 1
        finally:
            if database is not None:
                await database.close()
            server.stop()


def main(argv: list[str] | None = None) -> int:
    return run_main(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
