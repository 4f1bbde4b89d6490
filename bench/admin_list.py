#!/usr/bin/env python3
"""Admin list benchmark: our message list against a stock starlette-admin Beanie `ModelView`.

One run starts ONE nx-27017 server (the embedded default) on a temporary data dir, opens a fresh
database with Beanie (`chatadmin.models.DOCUMENT_MODELS`), creates the product's indexes with
`chatadmin.migrations.migrate`, and then:

  seed    --messages message documents in --threads threads (several orgs and users; roles
          user / assistant / tool; created_at spread over --days days with its `created_at_ms`
          twin; text filled), written with raw PyMongo `insert_many` in batches of --batch. Every
          document has exactly the shape `Message(...)` stores: a few hundred templates are
          built with the product's `build_message` and encoded with Beanie's `Encoder` and the
          storage encoders, and each document is a copy of one with its own ids, thread, org,
          user, seq and times.
  ours    the real admin HTTP stack: `create_app(Settings(...), database=...)` with its lifespan
          running, driven in-process over ASGI by httpx; log in as an `admin` (GET /admin/login,
          POST with the hidden csrftoken) and GET /admin/messages/list unfiltered, filtered by
          thread, and filtered by role plus a 7-day created_at range, --repeats times each.
  stock   a stock `starlette_admin.contrib.beanie.ModelView(Message)` in a second `BaseAdmin`
          on a separate Starlette app over the same data (no auth), the same three pages; the
          stock converter cannot convert our models' `Annotated`/`Literal` fields, so it gets
          our field converter (`chatadmin.admin.base.Converter`), which changes field types
          only, never the queries. Each request is capped at --stock-timeout seconds; a failure
          or timeout is recorded as such, and a page is repeated only while its samples stay
          within --stock-budget seconds.
  core    the two operations the stock view cannot avoid on every list page, run directly:
          `Message.find(q, fetch_links=True, nesting_depth=1).sort(_id).skip(0).limit(25)
          .to_list()` and `Message.find(q).count()` (exact `count_documents`; unfiltered, the
          stock view asks for `estimated_document_count` and so does this), with q exactly as the
          stock view builds it from the same filter string.
  detail  for information, where our page's time goes: our view's own `find_all` and `count`
          called directly (no HTTP, no rendering), for every org and as an admin scoped to one
          org, and the same reads with the view's `$and` flattened into one dict (nx-27017 runs
          a flat query in SQL and an `$and` in Python; MongoDB treats both alike).
  what if for information, last (skip with --no-what-if): two single-field indexes
          (created_at_ms, thread_id), which nx-27017 uses where it uses none of the product's
          compound indexes, and our pages and reads timed again. Not the product's indexes.

It prints p50 / p95 per page, the ratios stock / ours, the goals (every filtered page of ours
p50 <= 300 ms, and >= 10 x faster than stock), and writes the figures as JSON and a Markdown
table under bench/results/.

    .venv/bin/python bench/admin_list.py --messages 50000 --threads 1000
    .venv/bin/python bench/admin_list.py [--messages 1000000] [--threads 20000] [--repeats 7]

MessageView must offer filters on thread_id, role and created_at (its `searchable_fields`);
when it does not, the run stops before seeding unless --patch-filterable is given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import os
import platform
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/admin_list.py` from a checkout
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from beanie.odm.utils.encoder import Encoder  # noqa: E402
from pymongo import ASCENDING  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette_admin import BaseAdmin  # noqa: E402
from starlette_admin.contrib.beanie import ModelView  # noqa: E402
from starlette_admin.types import RequestAction  # noqa: E402

from chatadmin.admin.base import COUNT_CAP, Converter  # noqa: E402
from chatadmin.admin.roles import StaffUser  # noqa: E402
from chatadmin.admin.views import MessageView  # noqa: E402
from chatadmin.app import create_app  # noqa: E402
from chatadmin.db import Database  # noqa: E402
from chatadmin.embedded import EmbeddedMongo  # noqa: E402
from chatadmin.migrations import migrate  # noqa: E402
from chatadmin.models import Message  # noqa: E402
from chatadmin.models.base import STORAGE_ENCODERS  # noqa: E402
from chatadmin.services.accounts import create_admin_user  # noqa: E402
from chatadmin.services.messages import build_message  # noqa: E402
from chatadmin.settings import Settings  # noqa: E402

GOAL_P50_MS = 300.0  # every filtered page of ours, p50
GOAL_RATIO = 10.0  # every filtered page: stock / ours
PAGE_SIZE = 25
FILTERED_FIELDS = ("thread_id", "role", "created_at")  # what the filtered pages filter on
# Informational, after everything else: single-field indexes, which nx-27017 uses for a filter
# or a sort on that field (it uses none of the product's compound indexes).
WHAT_IF_INDEXES = [
    ([("created_at_ms", -1)], "whatif_created_at_ms"),
    ([("thread_id", 1)], "whatif_thread_id"),
]
ADMIN_USER, ADMIN_PASSWORD = "bench-admin", "bench-password-" + secrets.token_hex(8)

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
TOOLS = ["get_price_history", "compute_volatility", "run_sql", "search_filings"]
MODELS = ["claude-sonnet-4", "claude-haiku-4", "gpt-4.1-mini"]
TEMPLATES_PER_KIND = 300


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 18))]
    if rng.random() < 0.5:
        words.insert(rng.randrange(len(words)), rng.choice(TICKERS))
    return " ".join(words).capitalize() + rng.choice([".", "?", "."])


def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(low, high)))


def _ai(rng: random.Random) -> dict:
    inp, out = rng.randint(300, 4000), rng.randint(50, 1000)
    return {
        "model": rng.choice(MODELS),
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": inp + out,
        "response_ms": rng.randint(300, 6000),
        "temperature": 0.2,
    }


def make_templates(rng: random.Random) -> dict[str, list[dict]]:
    """Stored documents of each kind, built by the product (`build_message`) and encoded as
    Beanie stores them (`Encoder` with the storage encoders). Needs Beanie initialised."""
    encoder = Encoder(custom_encoders=STORAGE_ENCODERS)
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    kinds: dict[str, list[dict]] = {"user": [], "assistant": [], "assistant_tool": [], "tool": []}
    for i in range(TEMPLATES_PER_KIND):
        tool_id = f"toolu_{i:05d}"
        ticker = rng.choice(TICKERS)
        built = {
            "user": build_message(
                "tpl-org", "tpl-thread", role="user", user_id="tpl-user",
                content=_text(rng, 1, 3), created_at=when,
            ),
            "assistant": build_message(
                "tpl-org", "tpl-thread", role="assistant", content=_text(rng, 3, 10),
                ai_metadata=_ai(rng), created_at=when,
            ),
            "assistant_tool": build_message(
                "tpl-org", "tpl-thread", role="assistant", ai_metadata=_ai(rng), created_at=when,
                content=[
                    {"type": "text", "text": _text(rng, 1, 2)},
                    {"type": "tool_use", "id": tool_id, "name": rng.choice(TOOLS),
                     "input": {"ticker": ticker, "lookback_days": rng.choice([7, 30, 90])}},
                ],
            ),
            "tool": build_message(
                "tpl-org", "tpl-thread", role="tool", created_at=when,
                content=[
                    {"type": "tool_result", "tool_use_id": tool_id, "is_error": False,
                     "content": json.dumps({"ticker": ticker, "rows": [
                         [d, round(rng.uniform(50, 500), 2)] for d in range(rng.randint(5, 30))
                     ]})},
                ],
            ),
        }  # fmt: skip
        for kind, message in built.items():
            kinds[kind].append(encoder.encode(message.stamped()))
    return kinds


@dataclass
class ThreadPlan:
    thread_id: str
    org_id: str
    user_id: str
    size: int
    start_ms: int


def plan_threads(args: argparse.Namespace, rng: random.Random, end_ms: int) -> list[ThreadPlan]:
    """--threads threads whose sizes (uniform around the mean) add up to exactly --messages;
    each thread starts at a uniformly random time in the --days window and its messages follow
    2 s to 5 min apart. Orgs have uneven weights; each user belongs to one org."""
    n_threads = min(args.threads, args.messages)
    mean = args.messages / n_threads
    sizes = [rng.randint(1, max(1, round(2 * mean - 1))) for _ in range(n_threads)]
    diff = args.messages - sum(sizes)
    while diff:
        i = rng.randrange(n_threads)
        if diff > 0:
            sizes[i] += 1
            diff -= 1
        elif sizes[i] > 1:
            sizes[i] -= 1
            diff += 1
    orgs = [f"org-{k + 1:02d}" for k in range(args.orgs)]
    weights = [1.0 / (k + 1) for k in range(args.orgs)]  # org-01 is the biggest
    users = [(f"user-{u:05d}", rng.choices(orgs, weights)[0]) for u in range(args.users)]
    span_ms = args.days * 86_400_000
    plans = []
    for i, size in enumerate(sizes):
        user_id, org_id = rng.choice(users)
        duration = size * 151_000  # mean gap
        start = end_ms - span_ms + rng.randrange(max(1, span_ms - duration))
        plans.append(ThreadPlan(f"thread-{i:06d}", org_id, user_id, size, start))
    return plans


def thread_documents(plan: ThreadPlan, templates: dict[str, list[dict]], rng: random.Random):
    """The thread's stored message documents, seq 0..size-1: turns of a user question and an
    answer, a third of them through a tool (assistant tool_use, tool result, final answer)."""
    kinds: list[str] = []
    while len(kinds) < plan.size:
        kinds.append("user")
        if rng.random() < 0.35:
            kinds += ["assistant_tool", "tool", "assistant"]
        else:
            kinds.append("assistant")
    ms = plan.start_ms
    for seq, kind in enumerate(kinds[: plan.size]):
        doc = dict(rng.choice(templates[kind]))
        doc["_id"] = f"{rng.getrandbits(128):032x}"
        doc["message_id"] = f"{plan.thread_id}-m{seq:04d}"
        doc["org_id"] = plan.org_id
        doc["thread_id"] = plan.thread_id
        doc["user_id"] = plan.user_id if kind == "user" else None
        doc["seq"] = seq
        doc["created_at"] = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        doc["created_at_ms"] = ms
        doc["updated_at_ms"] = ms
        yield doc
        ms += rng.randint(2_000, 300_000)


async def seed(args, database: Database, plans: list[ThreadPlan], rng: random.Random) -> dict:
    templates = make_templates(rng)
    coll = database.db[Message.Settings.name]
    total, done, batch = sum(p.size for p in plans), 0, []
    insert_s = 0.0
    t0 = time.perf_counter()

    async def flush() -> None:
        nonlocal done, batch, insert_s
        t = time.perf_counter()
        await coll.insert_many(batch, ordered=False)
        insert_s += time.perf_counter() - t
        done += len(batch)
        batch = []
        wall = time.perf_counter() - t0
        say(
            f"  seeded {done:>9,} / {total:,}  {done / wall:6,.0f} msg/s  "
            f"{wall:6.0f} s elapsed, ~{(total - done) / (done / wall):5.0f} s to go",
            end="\r" if done < total else "\n",
        )

    for plan in plans:
        for doc in thread_documents(plan, templates, rng):
            batch.append(doc)
            if len(batch) == args.batch:
                await flush()
    if batch:
        await flush()
    wall = time.perf_counter() - t0
    stored = await coll.estimated_document_count()
    sample = await coll.find_one({}, {"content": 0, "text": 0})
    return {
        "messages": total,
        "stored": stored,
        "seconds": round(wall, 1),
        "messages_per_second": round(total / wall, 1),
        "insert_seconds": round(insert_s, 1),
        "batch": args.batch,
        "avg_doc_bytes": int(statistics.mean(len(json.dumps(d, default=str)) for d in (
            dict(t) for kind in templates.values() for t in kind))),
        "sample_keys": sorted(sample or {}),
    }  # fmt: skip


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


async def settle(pid: int | None, max_wait: float = 900.0) -> float:
    """Wait until the server is idle (uses < 5 % of a core over half a second), e.g. after a
    request was abandoned on a timeout while the server still works on it; returns the wait."""
    t0 = time.perf_counter()
    prev = cpu_seconds(pid)
    while time.perf_counter() - t0 < max_wait:
        await asyncio.sleep(0.5)
        cur = cpu_seconds(pid)
        if cur - prev < 0.025:
            break
        prev = cur
    return time.perf_counter() - t0


# -- timing --------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Samples of one measured thing: milliseconds, or the failures met."""

    samples: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    nx_cpu_s: float = 0.0
    note: str = ""
    splits: list[dict[str, float]] = field(default_factory=list)  # per sample, see SPLIT

    @property
    def p50(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def p95(self) -> float | None:
        if not self.samples:
            return None
        s = sorted(self.samples)
        return s[max(0, math.ceil(0.95 * len(s)) - 1)]  # nearest rank

    def split_p50(self, part: str) -> float | None:
        """Median ms of one part of our requests: find_all, count, or the rest."""
        if not self.splits:
            return None
        if part == "rest":
            values = [
                ms - s.get("find_all", 0.0) - s.get("count", 0.0)
                for ms, s in zip(self.samples, self.splits, strict=True)
            ]
        else:
            values = [s.get(part, 0.0) for s in self.splits]
        return statistics.median(values)

    def summary(self) -> dict:
        return {
            "p50_ms": _r(self.p50),
            "p95_ms": _r(self.p95),
            "samples_ms": [round(x, 1) for x in self.samples],
            "errors": self.errors,
            "nx_cpu_s": round(self.nx_cpu_s, 2),
            "note": self.note,
            **(
                {"split_p50_ms": {k: _r(self.split_p50(k)) for k in ("find_all", "count", "rest")}}
                if self.splits
                else {}
            ),
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


SLOW_WARMUP_MS = 5000.0  # a first run slower than this is counted: nothing left to warm up


async def _measure(run, repeats: int, nx_pid: int | None, cap, budget, what: str, keep=False):
    """Run `run()` (returns (ms, result) or raises) once to warm up and then `repeats` times.

    The warm-up is not counted unless it took more than SLOW_WARMUP_MS (then it is a sample,
    so that slow pages need one run fewer). With `cap` (s), a run that takes longer is
    abandoned and the server left to finish before going on; with `budget`, repeats stop once
    the samples add up to that many seconds. The first failure ends the series.
    """
    timing, result = Timing(), None
    cpu0 = cpu_seconds(nx_pid)
    for i in range(repeats + 1):
        try:
            ms, result = await asyncio.wait_for(run(), cap)
        except TimeoutError:
            timing.errors.append(f"timeout after {cap:.0f} s")
            waited = await settle(nx_pid)
            timing.note = f"nx-27017 kept working {waited:.0f} s on the abandoned {what}"
            break
        except Exception as exc:  # raised inside the app or the driver
            timing.errors.append(f"{type(exc).__name__}: {_one_line(exc)}")
            await settle(nx_pid)
            break
        if i > 0 or ms > SLOW_WARMUP_MS:
            timing.samples.append(ms)
            if keep:
                timing.splits.append(result)
        if len(timing.samples) >= repeats:
            break
        if budget is not None and sum(timing.samples) / 1000 > budget:
            timing.note = f"{len(timing.samples)} of {repeats} repeats (budget {budget:.0f} s)"
            break
    timing.nx_cpu_s = cpu_seconds(nx_pid) - cpu0
    return timing, result


class BadStatus(Exception):
    pass


async def time_requests(
    http: httpx.AsyncClient,
    url: str,
    repeats: int,
    nx_pid: int | None,
    *,
    cap: float | None = None,
    budget: float | None = None,
    check=None,
    split: bool = False,
) -> Timing:
    """GET url (see `_measure`); every answer must be 200, else the series stops there. With
    `split`, the time our view spent in find_all and count in each request is kept too."""

    async def run():
        SPLIT.clear()
        t0 = time.perf_counter()
        r = await http.get(url)
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise BadStatus(f"HTTP {r.status_code} after {ms:.0f} ms: {_page_error(r)}")
        if check is not None:
            check(r.text)
        return ms, dict(SPLIT)

    timing, _ = await _measure(run, repeats, nx_pid, cap, budget, "request", keep=split)
    return timing


async def time_calls(make, repeats: int, nx_pid: int | None, cap: float | None = None, budget=None):
    """Await make() (see `_measure`); returns the timing and the last result."""

    async def run():
        t0 = time.perf_counter()
        result = await make()
        return (time.perf_counter() - t0) * 1000, result

    return await _measure(run, repeats, nx_pid, cap, budget, "call")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, BadStatus):
        return str(exc)
    return " ".join(str(exc).split())[:200]


def _page_error(r: httpx.Response) -> str:
    m = re.search(r"<title>(.*?)</title>", r.text, re.S)
    return " ".join((m.group(1) if m else r.text[:200]).split())


ROW_RE = re.compile(r"<tr data-sa-pk=")
TOTAL_RE = re.compile(r"rowsTotal:\s*(\d+)")


def page_figures(html: str) -> tuple[int, int | None]:
    """(rows shown, total as rendered for the pager) of a list page."""
    m = TOTAL_RE.search(html)
    return len(ROW_RE.findall(html)), int(m.group(1)) if m else None


# -- the two admins ------------------------------------------------------------------------------


async def login(http: httpx.AsyncClient) -> None:
    """GET the login form, POST it with its hidden csrftoken; the session cookie stays in `http`."""
    r = await http.get("/admin/login")
    r.raise_for_status()
    m = re.search(r'name="csrftoken"\s+value="([^"]+)"', r.text) or re.search(
        r'value="([^"]+)"\s+name="csrftoken"', r.text
    )
    if not m:
        raise RuntimeError("no csrftoken field on /admin/login")
    r = await http.post(
        "/admin/login",
        data={"username": ADMIN_USER, "password": ADMIN_PASSWORD, "csrftoken": m.group(1)},
    )
    if r.status_code not in (302, 303) or "login" in r.headers.get("location", "login"):
        raise RuntimeError(f"login failed: HTTP {r.status_code} {_page_error(r)}")
    r = await http.get("/admin/messages/list")
    if r.status_code != 200 or "/admin/login" in str(r.url):
        raise RuntimeError(f"not logged in after login: HTTP {r.status_code}")


def stock_app(secret: str) -> tuple[Starlette, ModelView]:
    """A stock Beanie ModelView(Message) in its own BaseAdmin, no auth, on its own app."""
    view = ModelView(Message, key="messages", converter=Converter())
    view.page_size = PAGE_SIZE  # the stock default is 10 rows; both views render 25
    admin = BaseAdmin(title="stock", base_url="/admin", secret_key=secret)
    admin.add_view(view)
    app = Starlette()
    admin.mount_to(app)
    return app, view


def fake_request(query: dict[str, str], user: StaffUser | None = None) -> Request:
    """A bare GET request carrying a query string (and a logged-in staff user)."""
    request = Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/admin/messages/list",
            "query_string": urlencode(query).encode(),
            "headers": [],
            "app": None,
        }
    )
    request.state.admin_user = user
    request.state.action = RequestAction.LIST
    return request


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Page:
    name: str
    filter: str | None  # the `filter` query param, the same string for both views
    detail: str  # what it selects

    def query(self) -> dict[str, str]:
        return {"filter": self.filter} if self.filter else {}

    def url(self) -> str:
        return "/admin/messages/list" + (f"?{urlencode(self.query())}" if self.filter else "")


def choose_pages(plans: list[ThreadPlan], end_ms: int, days: int) -> tuple[list[Page], dict]:
    mean = sum(p.size for p in plans) / len(plans)
    typical = min(plans, key=lambda p: (abs(p.size - max(mean, PAGE_SIZE + 1)), p.thread_id))
    end = dt.datetime.fromtimestamp(end_ms / 1000, dt.UTC).replace(tzinfo=None)
    start = end - dt.timedelta(days=days / 2)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    stop = start + dt.timedelta(days=7)
    rng_text = f"{start:%Y-%m-%dT%H:%M:%S}..{stop:%Y-%m-%dT%H:%M:%S}"
    pages = [
        Page("unfiltered", None, "every message, newest first"),
        Page(
            "by thread",
            f"thread_id__eq={typical.thread_id}",
            f"thread {typical.thread_id} ({typical.size} messages, {typical.org_id})",
        ),
        Page(
            "role + 7 days",
            f"role__in=assistant AND created_at__between={rng_text}",
            f"assistant messages, {start:%Y-%m-%d} to {stop:%Y-%m-%d}",
        ),
    ]
    return pages, {"thread": typical, "start": start, "stop": stop}


def check_filterable(args: argparse.Namespace) -> list[str]:
    """The fields the filtered pages need that MessageView does not offer filters on.

    starlette-admin offers filters only on `searchable_fields`, and DocumentView fills those
    from `search_fields` (the search box's fields) when a view does not set them. Without
    --patch-filterable a missing field stops the run before seeding; with it, the missing
    fields are added to MessageView in this process only (no file is changed), and the report
    says so.
    """
    names = MessageView().searchable_fields or []
    missing = [f for f in FILTERED_FIELDS if f not in names]
    if missing and args.patch_filterable:
        MessageView.searchable_fields = [*names, *missing]
        say(
            f"NOTE: MessageView offers no filter on {', '.join(missing)} (searchable_fields = "
            f"{names}); added for this run only (--patch-filterable)"
        )
    elif missing:
        raise SystemExit(
            f"MessageView offers no filter on {', '.join(missing)} (searchable_fields = "
            f"{names}), so /admin/messages/list?filter=... answers 400. Add them to the view, "
            "or pass --patch-filterable to measure with them added in this process only."
        )
    return missing


def flatten(query: Any) -> Any:
    """The same query with `$and` lists of conditions on distinct keys merged into one dict
    (what MongoDB treats identically; nx-27017 runs the flat form in SQL, `$and` in Python)."""
    if isinstance(query, dict) and set(query) == {"$and"} and isinstance(query["$and"], list):
        merged: dict = {}
        for part in query["$and"]:
            part = flatten(part)
            if not isinstance(part, dict) or any(k in merged for k in part):
                return query
            merged.update(part)
        return merged
    return query


SPLIT: dict[str, float] = {}  # ms spent in MessageView.find_all / count in the current request


def instrument_message_view() -> None:
    """Time MessageView.find_all and count inside every request (in this process only; the
    methods behave exactly as before), so a page's time splits into find, count and the rest."""
    for name in ("find_all", "count"):
        orig = getattr(MessageView, name)
        if getattr(orig, "bench_timed", False):
            continue

        async def timed(self, *args, _orig=orig, _name=name, **kwargs):
            t0 = time.perf_counter()
            try:
                return await _orig(self, *args, **kwargs)
            finally:
                SPLIT[_name] = SPLIT.get(_name, 0.0) + (time.perf_counter() - t0) * 1000

        timed.bench_timed = True
        setattr(MessageView, name, timed)


async def time_ours_pages(
    settings: Settings, database: Database, pages: list[Page], args, nx_pid, figures, key: str
) -> dict[str, Timing]:
    """Our list pages through the whole admin HTTP stack, logged in as an admin."""
    app = create_app(settings, database=database)
    out: dict[str, Timing] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", timeout=None
        ) as http:
            await login(http)
            for page in pages:

                def check(html: str, page: Page = page) -> None:
                    figures[page.name][key] = page_figures(html)

                t = await time_requests(
                    http, page.url(), args.repeats, nx_pid, check=check, split=True
                )
                out[page.name] = t
                say(f"  {page.name:<14} {_fmt(t)}  rows/total {figures[page.name].get(key)}")
    return out


async def time_ours_reads(
    pages: list[Page], users: dict[str, StaffUser], args, nx_pid, results, figures, suffix=""
) -> None:
    """Our view's own find_all and count called directly (no HTTP, no rendering), and the same
    reads with `$and` flattened (see `flatten`), per page and per user."""
    view = MessageView()
    coll = Message.get_pymongo_collection()
    n = args.detail_repeats
    for page in pages:
        for label, user in users.items():
            req = fake_request(page.query(), user)
            filters = view._parse_filter_param(req)
            sorts = view._parse_list_params(req).sorts
            query = await view.build_query(req, None, filters)
            flat = flatten(query)
            spec = view.sort_spec(sorts)

            def find(req=req, filters=filters, sorts=sorts):
                return view.find_all(req, 0, PAGE_SIZE, None, sorts, filters)

            def count(req=req, filters=filters):
                return view.count(req, None, filters)

            tf, _ = await time_calls(find, n, nx_pid)
            tc, total = await time_calls(count, n, nx_pid)
            results[page.name][f"ours find ({label}){suffix}"] = tf
            results[page.name][f"ours count ({label}){suffix}"] = tc
            figures[page.name][f"ours query ({label})"] = repr(query)
            figures[page.name][f"ours count ({label}){suffix}"] = str(total)
            line = f"  {page.name:<14} {label:<8} find {_fmt(tf)}  count {_fmt(tc)} -> {total}"
            if flat != query:

                def ffind(flat=flat, spec=spec):
                    return Message.find(flat).sort(spec).skip(0).limit(PAGE_SIZE).to_list()

                def fcount(flat=flat):
                    return coll.find(flat, {"_id": 1}).limit(COUNT_CAP + 1).to_list()

                tff, _ = await time_calls(ffind, n, nx_pid)
                tfc, _ = await time_calls(fcount, n, nx_pid)
                results[page.name][f"flat find ({label}){suffix}"] = tff
                results[page.name][f"flat count ({label}){suffix}"] = tfc
                line += f"\n  {'':<14} {'':<8} flattened: find {_fmt(tff)}  count {_fmt(tfc)}"
            say(line)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine since boot, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    total = sum(values[:8])
    return total - values[3] - values[4], total


class Load:
    """CPU used on the machine by processes other than this benchmark and its nx-27017."""

    def __init__(self, pids: list[int | None]):
        self.pids = pids
        self.busy0, self.total0 = machine_ticks()
        self.ours0 = sum(cpu_seconds(p) for p in pids)
        self.load0 = _loadavg()

    def summary(self) -> dict:
        busy, total = machine_ticks()
        ours = sum(cpu_seconds(p) for p in self.pids) - self.ours0
        cores = os.cpu_count() or 1
        wall = (total - self.total0) / CLK_TCK / cores
        busy_s = (busy - self.busy0) / CLK_TCK
        return {
            "wall_s": round(wall, 1),
            "machine_cpu_s": round(busy_s, 1),
            "bench_and_nx_cpu_s": round(ours, 1),
            "others_cores_avg": round(max(0.0, busy_s - ours) / wall, 2) if wall else 0.0,
            "loadavg_start": self.load0,
            "loadavg_end": _loadavg(),
        }


def _loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return ""


async def main_async(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    patched = check_filterable(args)
    instrument_message_view()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    info = machine()
    rng = random.Random(args.seed)
    end_ms = int(dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0).timestamp())
    end_ms *= 1000
    work = Path(tempfile.mkdtemp(prefix="chatadmin-bench-admin-"))
    mongo = EmbeddedMongo(work / "nx")
    database: Database | None = None
    secret = secrets.token_urlsafe(48)
    try:
        mongo.start(reuse=False)
        nx_pid = mongo.proc.pid if mongo.proc else None
        load = Load([nx_pid, os.getpid()])
        say(f"nx-27017 at {mongo.uri} (data in {work}); load average {load.load0}")
        settings = Settings(
            _env_file=None,
            mongodb_uri=mongo.uri,
            mongodb_db_name=f"bench_admin_{stamp.replace('-', '_')}",
            redis_url=None,
            chatadmin_secret_key=secret,
            chatadmin_secure_cookies=False,  # plain http on loopback
            chatadmin_auto_migrate=False,  # migrated below, before seeding
            chatadmin_data_dir=work / "app-data",
            chatadmin_log_level="WARNING",
        )
        database = await Database.open(settings)  # init_beanie(DOCUMENT_MODELS), fresh database
        applied = await migrate(database.db)  # the product's indexes
        say(f"database {database.db.name}: {len(applied)} migrations applied")

        plans = plan_threads(args, rng, end_ms)
        say(
            f"seeding {args.messages:,} messages in {len(plans):,} threads, {args.orgs} orgs, "
            f"{args.users} users, {args.days} days, batches of {args.batch:,} ..."
        )
        seeded = await seed(args, database, plans, rng)
        say(f"  {seeded['messages_per_second']:,.0f} messages/s ({seeded['seconds']:.0f} s)")
        await create_admin_user(ADMIN_USER, ADMIN_PASSWORD, "admin")
        pages, chosen = choose_pages(plans, end_ms, args.days)
        coll = Message.get_pymongo_collection()
        await settle(nx_pid)
        results: dict[str, dict[str, Timing]] = {p.name: {} for p in pages}
        figures: dict[str, dict] = {p.name: {} for p in pages}

        # -- ours, through the whole admin HTTP stack
        say(f"ours: /admin/messages/list as {ADMIN_USER} (admin), {args.repeats} repeats per page")
        for name, t in (
            await time_ours_pages(settings, database, pages, args, nx_pid, figures, "ours")
        ).items():
            results[name]["ours"] = t

        # -- where our time goes: our view's own reads, called directly
        users = {
            "all orgs": StaffUser(username="bench", admin_id="bench", role="admin"),
            "scoped": StaffUser(
                username="bench", admin_id="bench", role="admin", org_id=chosen["thread"].org_id
            ),
        }
        say(
            f"ours, direct reads (no HTTP, no rendering), {args.detail_repeats} repeats; "
            f"scoped = an admin of {chosen['thread'].org_id}"
        )
        await time_ours_reads(pages, users, args, nx_pid, results, figures)

        # -- the stock view, through its own admin HTTP stack
        s_app, s_view = stock_app(secret)
        transport = httpx.ASGITransport(app=s_app, client=("127.0.0.1", 50001))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", timeout=None
        ) as http:
            say(
                f"stock ModelView: {args.repeats} repeats per page, each request capped at "
                f"{args.stock_timeout:.0f} s, ~{args.stock_budget:.0f} s of samples per page"
            )
            for page in pages:

                def check(html: str, page: Page = page) -> None:
                    figures[page.name]["stock"] = page_figures(html)

                t = await time_requests(
                    http,
                    page.url(),
                    args.repeats,
                    nx_pid,
                    cap=args.stock_timeout,
                    budget=args.stock_budget,
                    check=check,
                )
                results[page.name]["stock"] = t
                say(f"  {page.name:<14} {_fmt(t)}  rows/total {figures[page.name].get('stock')}")

        # -- the stock view's unavoidable reads, called directly
        say("stock core: find(q, fetch_links=True) page and exact count, called directly")
        for page in pages:
            req = fake_request(page.query())
            filters = s_view._parse_filter_param(req)
            sorts = s_view._parse_list_params(req).sorts
            q, _ = await s_view._build_query(req, None, filters)
            order = [("_id" if k == "id" else k, ASCENDING if d == "asc" else -1) for k, d in sorts]
            figures[page.name]["stock query"] = repr(q)

            def find(q=q, order=order):
                cursor = Message.find(q, fetch_links=True, nesting_depth=1)
                return cursor.sort(order).skip(0).limit(PAGE_SIZE).to_list()

            def count(q=q):
                if not q:  # the stock view's own choice when there is no filter
                    return coll.estimated_document_count()
                return Message.find(q).count()

            tf, found = await time_calls(
                find, args.repeats, nx_pid, args.stock_timeout, args.stock_budget
            )
            tc, total = await time_calls(
                count, args.repeats, nx_pid, args.stock_timeout, args.stock_budget
            )
            results[page.name]["core find"] = tf
            results[page.name]["core count"] = tc
            figures[page.name]["core"] = (len(found) if found is not None else None, total)
            say(f"  {page.name:<14} find {_fmt(tf)}  count {_fmt(tc)} -> {total}")

        # -- what if: two single-field indexes nx-27017 can use (not the product's indexes)
        what_if = None
        if args.what_if:
            t0 = time.perf_counter()
            for keys, name in WHAT_IF_INDEXES:
                await coll.create_index(keys, name=name)
            built = time.perf_counter() - t0
            say(
                f"what if: + single-field indexes {', '.join(n for _, n in WHAT_IF_INDEXES)} "
                f"(built in {built:.0f} s); ours again"
            )
            for name, t in (
                await time_ours_pages(settings, database, pages, args, nx_pid, figures, "ours+idx")
            ).items():
                results[name]["ours +idx"] = t
            await time_ours_reads(
                pages, {"all orgs": users["all orgs"]}, args, nx_pid, results, figures, " +idx"
            )
            what_if = {"indexes": [n for _, n in WHAT_IF_INDEXES], "build_s": round(built, 1)}

        seeded["load"] = load.summary()
        text, md, result = report(
            args, info, seeded, pages, chosen, results, figures, patched, what_if
        )
        result["total_seconds"] = round(time.perf_counter() - t_start, 1)
        print(text, flush=True)
        args.results_dir.mkdir(parents=True, exist_ok=True)
        out = args.results_dir / f"admin_list-{stamp}.json"
        result["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        out.with_suffix(".md").write_text(md)
        print(f"  figures written to {out} and {out.with_suffix('.md')}", flush=True)
        print(f"  total run {time.perf_counter() - t_start:.0f} s", flush=True)
        ours_ok = all(
            results[p.name]["ours"].samples and not results[p.name]["ours"].errors for p in pages
        )
        return 0 if ours_ok else 1
    finally:
        if database is not None:
            with contextlib.suppress(Exception):
                await database.close()
        mongo.stop()
        if not args.keep_data:
            shutil.rmtree(work, ignore_errors=True)


def _fmt(t: Timing) -> str:
    if t.samples:
        s = f"p50 {t.p50:8.1f} ms  p95 {t.p95:8.1f} ms"
    else:
        s = f"{'-':>31}"
    if t.errors:
        s += f"  [{'; '.join(t.errors)}]"
    if t.note:
        s += f"  ({t.note})"
    return s


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
        "neosqlite": ver("neosqlite"),
        "pymongo": ver("pymongo"),
        "beanie": ver("beanie"),
        "starlette-admin": ver("starlette-admin"),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _ms(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 0:  # a difference of separately measured medians, lost in the noise
        return "~0"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def report(
    args, info, seeded, pages, chosen, results, figures, patched, what_if
) -> tuple[str, str, dict]:
    lines: list[str] = []
    p = lines.append
    rows = []
    goals = {}
    for page in pages:
        r = results[page.name]
        ours, stock = r["ours"], r["stock"]
        core_f, core_c = r["core find"], r["core count"]
        core = core_f.p50 + core_c.p50 if core_f.samples and core_c.samples else None
        ratio_stock = stock.p50 / ours.p50 if stock.p50 and ours.p50 else None
        ratio_core = core / ours.p50 if core and ours.p50 else None
        if stock.p50 is not None:
            basis, ratio = "stock page", ratio_stock
        elif any("timeout" in e for e in stock.errors) and ours.p50:
            basis, ratio = "stock timed out", args.stock_timeout * 1000 / ours.p50
        else:
            basis, ratio = "stock core", ratio_core
        rows.append((page, ours, stock, core, ratio_stock, ratio_core))
        if page.filter:
            goals[f"{page.name}: ours p50 <= {GOAL_P50_MS:.0f} ms"] = verdict(
                ours.p50 is not None and ours.p50 <= GOAL_P50_MS
            )
            goals[f"{page.name}: stock / ours >= {GOAL_RATIO:g} ({basis})"] = verdict(
                ratio is not None and ratio >= GOAL_RATIO
            )

    def stock_cell(t: Timing) -> str:
        if t.p50 is not None:
            return _ms(t.p50) + (" *" if t.errors else "")
        return "; ".join(t.errors) or "-"

    def total_cell(fig) -> str:
        if not fig:
            return "-"
        shown, total = fig
        if total == COUNT_CAP + 1:
            return f"{shown} of {COUNT_CAP:,}+"
        return f"{shown} of {total:,}" if total is not None else f"{shown} of ?"

    load = seeded.get("load", {})
    p("")
    p("chatadmin admin list benchmark (GET /admin/messages/list)")
    p(
        f"  machine   {info['nproc']} cores ({info['cpu']}), {info['memory']} RAM, Python "
        f"{info['python']}, nx-27017 {info['nx-27017']} (neosqlite {info['neosqlite']}), "
        f"starlette-admin {info['starlette-admin']}, beanie {info['beanie']}, {info['date']}"
    )
    p(
        f"  load      other processes used {load.get('others_cores_avg', 0):.2f} of "
        f"{info['nproc']} cores on average during the run (load average "
        f"{load.get('loadavg_start')} at start, {load.get('loadavg_end')} at end)"
    )
    p(
        f"  data      {seeded['stored']:,} messages, {args.threads:,} threads, {args.orgs} orgs, "
        f"{args.users} users, {args.days} days; seeded at {seeded['messages_per_second']:,.0f} "
        f"msg/s ({seeded['seconds']:.0f} s, insert_many of {seeded['batch']:,})"
    )
    for page in pages:
        p(f"  page      {page.name:<14} {page.detail}; filter={page.filter or '(none)'}")
    p(
        f"  repeats   {args.repeats} per page after one warm-up (a warm-up over "
        f"{SLOW_WARMUP_MS / 1000:.0f} s counts); p95 is the nearest rank"
    )
    if patched:
        p(
            f"  NOTE      MessageView offers no filter on {', '.join(patched)}; they were added "
            "to its searchable_fields for this run only (--patch-filterable)"
        )
    p("")
    p(
        f"  {'page':<14} {'ours p50':>9} {'ours p95':>9} {'stock p50':>12} "
        f"{'core p50':>9} {'stock/ours':>10} {'core/ours':>9}   rows shown of total: ours | stock"
    )
    for page, ours, stock, core, rs, rc in rows:
        f = figures[page.name]
        p(
            f"  {page.name:<14} {_ms(ours.p50):>9} {_ms(ours.p95):>9} "
            f"{stock_cell(stock)[:40]:>12} {_ms(core):>9} "
            f"{(f'{rs:.1f}x' if rs else '-'):>10} {(f'{rc:.1f}x' if rc else '-'):>9}   "
            f"{total_cell(f.get('ours'))} | {total_cell(f.get('stock'))}"
        )
    p("  (ms; core = the stock view's find(fetch_links=True) page + exact count, run directly)")
    p("")
    p("  where the time goes (p50 ms)")
    for page in pages:
        r = results[page.name]
        o = r["ours"]
        p(
            f"    {page.name:<14} ours page {_ms(o.p50)} = find_all {_ms(o.split_p50('find_all'))}"
            f" + count {_ms(o.split_p50('count'))} (-> "
            f"{figures[page.name]['ours count (all orgs)']}) + the rest (auth, serialise, "
            f"render) {_ms(o.split_p50('rest'))}, inside the same requests"
        )
        p(
            f"    {'':<14} the same reads called directly: find "
            f"{_ms(r['ours find (all orgs)'].p50)} + count {_ms(r['ours count (all orgs)'].p50)}"
            + (
                f"; with $and flattened: find {_ms(r['flat find (all orgs)'].p50)} + count "
                f"{_ms(r['flat count (all orgs)'].p50)}"
                if "flat find (all orgs)" in r
                else ""
            )
        )
        p(
            f"    {'':<14} scoped to {chosen['thread'].org_id}: find "
            f"{_ms(r['ours find (scoped)'].p50)} + count {_ms(r['ours count (scoped)'].p50)}"
            + (
                f"; $and flattened: find {_ms(r['flat find (scoped)'].p50)} + count "
                f"{_ms(r['flat count (scoped)'].p50)}"
                if "flat find (scoped)" in r
                else ""
            )
        )
        p(
            f"    {'':<14} stock core: find {_fmt_short(r['core find'])} + count "
            f"{_fmt_short(r['core count'])} (exact total {figures[page.name]['core'][1]})"
        )
        for label in ("ours", "stock"):
            t = r[label]
            if t.errors or t.note:
                p(f"    {'':<14} {label}: {'; '.join(t.errors + ([t.note] if t.note else []))}")
    if what_if:
        p("")
        p(
            f"  what if (informational, not the product): + single-field indexes "
            f"{', '.join(what_if['indexes'])} (built in {what_if['build_s']:.0f} s)"
        )
        for page in pages:
            r = results[page.name]
            t = r.get("ours +idx")
            if t is None:
                continue
            line = (
                f"    {page.name:<14} ours page p50 {_ms(t.p50)} (was {_ms(r['ours'].p50)}) = "
                f"find_all {_ms(t.split_p50('find_all'))} + count {_ms(t.split_p50('count'))} "
                f"+ rest {_ms(t.split_p50('rest'))}; direct: find "
                f"{_ms(r['ours find (all orgs) +idx'].p50)} + count "
                f"{_ms(r['ours count (all orgs) +idx'].p50)}"
            )
            if "flat find (all orgs) +idx" in r:
                line += (
                    f"; $and flattened: find {_ms(r['flat find (all orgs) +idx'].p50)} + count "
                    f"{_ms(r['flat count (all orgs) +idx'].p50)}"
                )
            if t.errors:
                line += f" [{'; '.join(t.errors)}]"
            p(line)
    p("")
    p("  goals")
    for name, v in goals.items():
        p(f"    {v}  {name}")
    text = "\n".join(lines)

    md: list[str] = []
    m = md.append
    m("| page | ours p50 | ours p95 | stock page p50 | stock core p50 (find + count) "
      "| stock / ours | core / ours |")  # fmt: skip
    m("|---|---:|---:|---:|---:|---:|---:|")
    for page, ours, stock, core, rs, rc in rows:
        r = results[page.name]
        core_cell = (
            f"{_ms(core)} ({_ms(r['core find'].p50)} + {_ms(r['core count'].p50)})"
            if core
            else f"find: {_fmt_short(r['core find'])}; count: {_fmt_short(r['core count'])}"
        )
        m(
            f"| {page.name} | {_ms(ours.p50)} | {_ms(ours.p95)} | {stock_cell(stock)} | "
            f"{core_cell} | {f'{rs:.1f} x' if rs else '-'} | {f'{rc:.1f} x' if rc else '-'} |"
        )
    m("")
    m("| page | ours page = find + count + rest, inside the request | direct find + count "
      "| same, `$and` flattened | scoped to one org: find + count | same, `$and` flattened |"
      + (" ours page with + single-field indexes |" if what_if else ""))  # fmt: skip
    m("|---|---|---:|---:|---:|---:|" + ("---:|" if what_if else ""))
    for page in pages:
        r = results[page.name]
        o = r["ours"]
        inside = (
            f"{_ms(o.p50)} = {_ms(o.split_p50('find_all'))} + {_ms(o.split_p50('count'))} + "
            f"{_ms(o.split_p50('rest'))}"
        )

        def pair(kind: str, label: str, r=r) -> str:
            key = f"{kind} find ({label})"
            if key not in r:
                return "(no `$and`)"
            return f"{_ms(r[key].p50)} + {_ms(r[f'{kind} count ({label})'].p50)}"

        cells = (
            f"| {page.name} | {inside} | {pair('ours', 'all orgs')} | {pair('flat', 'all orgs')}"
            f" | {pair('ours', 'scoped')} | {pair('flat', 'scoped')} |"
        )
        if what_if:
            t = r.get("ours +idx")
            cells += f" {_ms(t.p50) if t else '-'} |"
        m(cells)
    result = {
        "command": " ".join(["bench/admin_list.py", *sys.argv[1:]]),
        "machine": info,
        "seed": seeded,
        "pages": [
            {
                "name": page.name,
                "filter": page.filter,
                "detail": page.detail,
                "figures": figures[page.name],
                "timings": {k: t.summary() for k, t in results[page.name].items()},
            }
            for page in pages
        ],
        "goals": goals,
        "patched_filterable": patched,
        "what_if": what_if,
    }
    return text, "\n".join(md) + "\n", result


def _fmt_short(t: Timing) -> str:
    if t.samples:
        return _ms(t.p50) + (f" [{'; '.join(t.errors)}]" if t.errors else "")
    return "; ".join(t.errors) or "-"


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000, help="messages (1000000)")
    ap.add_argument("--threads", type=int, default=20_000, help="threads (20000)")
    ap.add_argument("--repeats", type=int, default=7, help="timed requests per page (7)")
    ap.add_argument("--orgs", type=int, default=5, help="orgs (5)")
    ap.add_argument("--users", type=int, default=500, help="end users (500)")
    ap.add_argument("--days", type=int, default=90, help="days the messages span (90)")
    ap.add_argument("--batch", type=int, default=5_000, help="insert_many batch (5000)")
    ap.add_argument(
        "--stock-timeout", type=float, default=120.0, help="cap per stock request, s (120)"
    )
    ap.add_argument(
        "--stock-budget",
        type=float,
        default=60.0,
        help="stop repeating a stock page (or core read) once its samples add up to this, s (60)",
    )
    ap.add_argument(
        "--detail-repeats",
        type=int,
        default=3,
        help="timed calls of each direct read of our view (3)",
    )
    ap.add_argument(
        "--no-what-if",
        dest="what_if",
        action="store_false",
        help="skip the informational last phase (ours again with two single-field indexes)",
    )
    ap.add_argument(
        "--patch-filterable",
        action="store_true",
        help="if MessageView offers no filter on thread_id, role or created_at, add them to its "
        "searchable_fields in this process only (reported) instead of stopping",
    )
    ap.add_argument("--seed", type=int, default=27017, help="random seed of the data (27017)")
    ap.add_argument("--keep-data", action="store_true", help="keep the temporary data dir")
    ap.add_argument(
        "--results-dir",
        type=Path,
        default=ROOT / "bench" / "results",
        help="where the figures go (bench/results)",
    )
    args = ap.parse_args(argv)
    for name in ("messages", "threads", "repeats", "orgs", "users", "days", "batch",
                 "detail_repeats"):  # fmt: skip
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    return args


def say(line: str, end: str = "\n") -> None:
    print(line, file=sys.stderr, end=end, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for name in ("chatadmin", "starlette_admin", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
