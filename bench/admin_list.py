#!/usr/bin/env python3
"""Admin list benchmark: our message list against a stock starlette-admin Beanie `ModelView`,
and how our pages hold as the collection grows.

One run starts ONE nx-27017 server (the embedded default) on a temporary data dir, opens a fresh
database with Beanie (`chatadmin.models.DOCUMENT_MODELS`), creates the product's indexes with
`chatadmin.migrations.migrate`, and then, for each size of --sizes (default: --messages alone),
grows the collection to that size and measures:

  seed    message documents in --threads threads planned for the largest size (several orgs
          and users; roles user / assistant / tool; created_at spread over --days days with its
          `created_at_ms` twin; text filled), written with raw PyMongo `insert_many` in batches
          of --batch (`bench.common.seeding`: templates built with the product's
          `build_message`, copied with their own ids, thread, org, user, seq and times). Each
          size adds the next messages of the same plan, so 100,000 is the first tenth of
          1,000,000.
  ours    the real admin HTTP stack: `create_app(Settings(...), database=...)` with its lifespan
          running, driven in-process over ASGI by httpx; log in as an `admin` (GET /admin/login,
          POST with the hidden csrftoken) and GET /admin/messages/list unfiltered, filtered by
          thread, and filtered by role plus a 7-day created_at range, --repeats times each. The
          pages are chosen at the first size (the thread is one seeded by then) and stay the same.
  detail  for information, where our page's time goes: our view's own `find_all` and `count`
          called directly (no HTTP, no rendering), for every org and as an admin scoped to one
          org, and the same reads with the view's `$and` flattened into one dict (nx-27017 runs
          a flat query in SQL and an `$and` in Python; MongoDB treats both alike).

At the first size only (skip with --no-stock):

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

At the last size only (skip with --no-what-if):

  what if two single-field indexes (created_at_ms, thread_id), which nx-27017 uses where it
          uses none of the product's compound indexes, and our pages and reads timed again. Not
          the product's indexes (migration 0002 has since added its own on the same fields).

It prints p50 / p95 per page and size, the ratios stock / ours, the goals (every filtered page
of ours p50 <= 300 ms, and >= 10 x faster than stock; with several sizes, every page's p50 at
the last size <= 1.5 x its p50 at the first), and writes the figures as JSON and a Markdown
table under bench/results/.

    .venv/bin/python bench/admin_list.py --messages 50000 --threads 1000
    .venv/bin/python bench/admin_list.py --sizes 100000,1000000 --threads 20000 --no-what-if

MessageView must offer filters on thread_id, role and created_at (its `searchable_fields`);
when it does not, the run stops before seeding unless --patch-filterable is given.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import random
import re
import secrets
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/admin_list.py` from a checkout
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from pymongo import ASCENDING  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette_admin import BaseAdmin  # noqa: E402
from starlette_admin.contrib.beanie import ModelView  # noqa: E402

from bench.common.admin import fake_request, staff  # noqa: E402
from bench.common.cli import add_plan_args, add_run_args, add_size_args, parse, run_main  # noqa: E402
from bench.common.report import (  # noqa: E402
    figures_head,
    goal_lines,
    machine,
    say,
    stamp,
    verdict,
    write_results,
)
from bench.common.seeding import (  # noqa: E402
    ThreadPlan,
    all_messages,
    insert_batches,
    message_templates,
    plan_threads,
    this_hour_ms,
)
from bench.common.servers import (  # noqa: E402
    open_database,
    scratch,
    server_pid,
    settings_for,
)
from bench.common.timing import (  # noqa: E402
    SLOW_WARMUP_MS,
    Meter,
    Timing,
    measure,
    settle,
    time_calls,
)
from chatadmin.admin.base import COUNT_CAP, Converter  # noqa: E402
from chatadmin.admin.roles import StaffUser  # noqa: E402
from chatadmin.admin.views import MessageView  # noqa: E402
from chatadmin.app import create_app  # noqa: E402
from chatadmin.db import Database  # noqa: E402
from chatadmin.models import Message  # noqa: E402
from chatadmin.services.accounts import create_admin_user  # noqa: E402
from chatadmin.settings import Settings  # noqa: E402
from chatadmin.testservers import NX, start_test_server  # noqa: E402

GOAL_P50_MS = 300.0  # every filtered page of ours, p50
GOAL_RATIO = 10.0  # every filtered page: stock / ours
GOAL_GROWTH = 1.5  # every page: p50 at the last size / p50 at the first
PAGE_SIZE = 25
LIST_PATH = "/admin/messages/list"
FILTERED_FIELDS = ("thread_id", "role", "created_at")  # what the filtered pages filter on
# Informational, after everything else: single-field indexes, which nx-27017 uses for a filter
# or a sort on that field (it uses none of the product's compound indexes).
WHAT_IF_INDEXES = [
    ([("created_at_ms", -1)], "whatif_created_at_ms"),
    ([("thread_id", 1)], "whatif_thread_id"),
]
ADMIN_USER, ADMIN_PASSWORD = "bench-admin", "bench-password-" + secrets.token_hex(8)


# -- timing requests -----------------------------------------------------------------------------


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
    """GET url (see `measure`); every answer must be 200, else the series stops there. With
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

    timing, _ = await measure(run, repeats, nx_pid, cap, budget, "request", keep=split)
    return timing


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
    r = await http.get(LIST_PATH)
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


# -- the pages -----------------------------------------------------------------------------------


@dataclass
class Page:
    name: str
    filter: str | None  # the `filter` query param, the same string for both views
    detail: str  # what it selects

    def query(self) -> dict[str, str]:
        return {"filter": self.filter} if self.filter else {}

    def url(self) -> str:
        return LIST_PATH + (f"?{urlencode(self.query())}" if self.filter else "")

    def request(self, user: StaffUser | None = None):
        return fake_request(LIST_PATH, self.query(), user)


def choose_pages(plans: list[ThreadPlan], end_ms: int, days: int) -> tuple[list[Page], dict]:
    """The three pages, for a typical thread of `plans` and 7 days in the middle of the span."""
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
            f"{names}), so {LIST_PATH}?filter=... answers 400. Add them to the view, "
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


# -- the measurements ----------------------------------------------------------------------------


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
            req = page.request(user)
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


async def time_stock(secret: str, pages: list[Page], args, nx_pid, results, figures) -> None:
    """The stock view through its own admin HTTP stack, then its unavoidable reads directly."""
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

    say("stock core: find(q, fetch_links=True) page and exact count, called directly")
    coll = Message.get_pymongo_collection()
    for page in pages:
        req = page.request()
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


async def time_what_if(settings, database, pages, args, nx_pid, results, figures, users) -> dict:
    """Two single-field indexes nx-27017 can use (not the product's), and ours again."""
    coll = Message.get_pymongo_collection()
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
    return {"indexes": [n for _, n in WHAT_IF_INDEXES], "build_s": round(built, 1)}


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


@dataclass
class SizeRun:
    """What was measured at one size of the collection."""

    size: int
    seeded: dict
    results: dict[str, dict[str, Timing]]
    figures: dict[str, dict]
    stock: bool = False
    what_if: dict | None = None


def _ms(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 0:  # a difference of separately measured medians, lost in the noise
        return "~0"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def _fmt_short(t: Timing) -> str:
    if t.samples:
        return _ms(t.p50) + (f" [{'; '.join(t.errors)}]" if t.errors else "")
    return "; ".join(t.errors) or "-"


def _stock_cell(t: Timing) -> str:
    if t.p50 is not None:
        return _ms(t.p50) + (" *" if t.errors else "")
    return "; ".join(t.errors) or "-"


def _total_cell(fig) -> str:
    if not fig:
        return "-"
    shown, total = fig
    if total == COUNT_CAP + 1:
        return f"{shown} of {COUNT_CAP:,}+"
    return f"{shown} of {total:,}" if total is not None else f"{shown} of ?"


def size_rows(args, run: SizeRun, pages: list[Page], goals: dict, prefix: str) -> list:
    """Per page: (page, ours, stock, core, stock/ours, core/ours); adds this size's goals."""
    rows = []
    for page in pages:
        r = run.results[page.name]
        ours, stock = r["ours"], r.get("stock", Timing())
        core_f, core_c = r.get("core find", Timing()), r.get("core count", Timing())
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
            goals[f"{prefix}{page.name}: ours p50 <= {GOAL_P50_MS:.0f} ms"] = verdict(
                ours.p50 is not None and ours.p50 <= GOAL_P50_MS
            )
            if run.stock:
                goals[f"{prefix}{page.name}: stock / ours >= {GOAL_RATIO:g} ({basis})"] = verdict(
                    ratio is not None and ratio >= GOAL_RATIO
                )
    return rows


def report_size(args, run: SizeRun, pages, chosen, rows, p, m) -> None:
    """One size's tables: `p` takes the text lines, `m` the Markdown lines."""
    results, figures = run.results, run.figures
    p(
        f"  {'page':<14} {'ours p50':>9} {'ours p95':>9} {'stock p50':>12} "
        f"{'core p50':>9} {'stock/ours':>10} {'core/ours':>9}   rows shown of total: ours | stock"
    )
    for page, ours, stock, core, rs, rc in rows:
        f = figures[page.name]
        p(
            f"  {page.name:<14} {_ms(ours.p50):>9} {_ms(ours.p95):>9} "
            f"{_stock_cell(stock)[:40]:>12} {_ms(core):>9} "
            f"{(f'{rs:.1f}x' if rs else '-'):>10} {(f'{rc:.1f}x' if rc else '-'):>9}   "
            f"{_total_cell(f.get('ours'))} | {_total_cell(f.get('stock'))}"
        )
    if run.stock:
        p("  (ms; core = the stock view's find(fetch_links=True) page + exact count, run directly)")
    else:
        p("  (ms; the stock view is measured at the first size only)")
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
        if run.stock:
            p(
                f"    {'':<14} stock core: find {_fmt_short(r['core find'])} + count "
                f"{_fmt_short(r['core count'])} (exact total {figures[page.name]['core'][1]})"
            )
        for label in ("ours", "stock"):
            t = r.get(label)
            if t is not None and (t.errors or t.note):
                p(f"    {'':<14} {label}: {'; '.join(t.errors + ([t.note] if t.note else []))}")
    what_if = run.what_if
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

    m("| page | ours p50 | ours p95 | stock page p50 | stock core p50 (find + count) "
      "| stock / ours | core / ours |")  # fmt: skip
    m("|---|---:|---:|---:|---:|---:|---:|")
    for page, ours, stock, core, rs, rc in rows:
        r = results[page.name]
        core_cell = (
            f"{_ms(core)} ({_ms(r['core find'].p50)} + {_ms(r['core count'].p50)})"
            if core
            else (
                f"find: {_fmt_short(r['core find'])}; count: {_fmt_short(r['core count'])}"
                if run.stock
                else "-"
            )
        )
        m(
            f"| {page.name} | {_ms(ours.p50)} | {_ms(ours.p95)} | {_stock_cell(stock)} | "
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


def growth(runs: list[SizeRun], pages: list[Page]) -> dict[str, dict]:
    """Per page: p50 at the first and the last size, and their ratio."""
    first, last = runs[0], runs[-1]
    out = {}
    for page in pages:
        a, b = first.results[page.name]["ours"].p50, last.results[page.name]["ours"].p50
        out[page.name] = {
            "first_p50_ms": a,
            "last_p50_ms": b,
            "ratio": b / a if a and b else None,
        }
    return out


def report(args, info, load, runs, pages, chosen, patched) -> tuple[str, str, dict]:
    lines: list[str] = []
    p = lines.append
    md: list[str] = []
    m = md.append
    goals: dict[str, str] = {}
    several = len(runs) > 1
    p("")
    p(f"chatadmin admin list benchmark (GET {LIST_PATH})")
    p(
        f"  machine   {info['nproc']} cores ({info['cpu']}), {info['memory']} RAM, Python "
        f"{info['python']}, nx-27017 {info['nx-27017']} (neosqlite {info['neosqlite']}), "
        f"starlette-admin {info['starlette-admin']}, beanie {info['beanie']}, {info['date']}"
    )
    p(f"  code      commit {info['commit']}, product tree {info['product_tree']}")
    p(
        f"  load      other processes used {load.get('others_cores_avg', 0):.2f} of "
        f"{info['nproc']} cores on average during the run (load average "
        f"{load.get('loadavg_start')} at start, {load.get('loadavg_end')} at end)"
    )
    for run in runs:
        s = run.seeded
        p(
            f"  data      {s['stored']:,} messages, {s['threads']:,} threads, {args.orgs} orgs, "
            f"{args.users} users, {args.days} days; seeded at {s['messages_per_second']:,.0f} "
            f"msg/s ({s['seconds']:.0f} s, insert_many of {args.batch:,})"
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
    for run in runs:
        prefix = f"at {run.size:,}: " if several else ""
        rows = size_rows(args, run, pages, goals, prefix)
        p("")
        if several:
            p(f"  at {run.size:,} messages")
            m(f"At {run.size:,} messages:")
            m("")
        report_size(args, run, pages, chosen, rows, p, m)
        m("")
    grown = growth(runs, pages) if several else {}
    if grown:
        first, last = runs[0].size, runs[-1].size
        p("")
        p(f"  growth of our p50 from {first:,} to {last:,} messages")
        m(f"| page | p50 at {first:,} | p50 at {last:,} | ratio | goal <= {GOAL_GROWTH} |")
        m("|---|---:|---:|---:|---|")
        for name, g in grown.items():
            ok = g["ratio"] is not None and g["ratio"] <= GOAL_GROWTH
            ratio = f"{g['ratio']:.2f}x" if g["ratio"] else "-"
            p(
                f"    {name:<14} {_ms(g['first_p50_ms']):>8} -> {_ms(g['last_p50_ms']):>8} ms"
                f"  {ratio:>6}  {verdict(ok)}"
            )
            m(
                f"| {name} | {_ms(g['first_p50_ms'])} | {_ms(g['last_p50_ms'])} | {ratio} | "
                f"{verdict(ok)} |"
            )
            goals[f"{name}: p50 at {last:,} <= {GOAL_GROWTH} x p50 at {first:,}"] = verdict(ok)
    lines += goal_lines(goals)
    result = figures_head(
        "admin_list.py",
        info,
        load=load,
        sizes=[
            {
                "messages": run.size,
                "seed": run.seeded,
                "stock_measured": run.stock,
                "what_if": run.what_if,
                "pages": [
                    {
                        "name": page.name,
                        "filter": page.filter,
                        "detail": page.detail,
                        "figures": run.figures[page.name],
                        "timings": {k: t.summary() for k, t in run.results[page.name].items()},
                    }
                    for page in pages
                ],
            }
            for run in runs
        ],
        growth=grown,
        goals=goals,
        patched_filterable=patched,
    )
    return "\n".join(lines), "\n".join(md) + "\n", result


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_args(
        ap,
        1_000_000,
        "messages",
        "measure at each of these sizes in one run, growing the collection from one to the "
        "next, e.g. 100000,1000000",
    )
    ap.add_argument(
        "--threads", type=int, default=20_000, help="threads at the largest size (20000)"
    )
    ap.add_argument("--repeats", type=int, default=7, help="timed requests per page (7)")
    add_plan_args(ap)
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
        "--no-stock",
        dest="stock",
        action="store_false",
        help="skip the stock view (otherwise measured at the first size)",
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
    add_run_args(ap)
    args = parse(ap, argv)
    for name in ("messages", "threads", "repeats", "orgs", "users", "days", "batch",
                 "detail_repeats"):  # fmt: skip
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    return args


def first_threads(plans: list[ThreadPlan], size: int) -> list[ThreadPlan]:
    """The threads seeded whole by the time the collection holds `size` messages."""
    out, total = [], 0
    for plan in plans:
        total += plan.size
        if total > size:
            break
        out.append(plan)
    return out or plans[:1]


def threads_started(plans: list[ThreadPlan], messages: int) -> int:
    """How many threads have at least one message once the first `messages` are seeded."""
    started, total = 0, 0
    for plan in plans:
        if total >= messages:
            break
        started += 1
        total += plan.size
    return started


async def main_async(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    patched = check_filterable(args)
    instrument_message_view()
    when = stamp()
    info = machine("starlette-admin")
    rng = random.Random(args.seed)
    end_ms = this_hour_ms()
    secret = secrets.token_urlsafe(48)
    with scratch("chatadmin-bench-admin-", args.keep_data) as work:
        mongo = start_test_server(NX, work / "nx")
        database: Database | None = None
        try:
            nx_pid = server_pid(mongo)
            meter = Meter({"nx": nx_pid, "bench": os.getpid()})
            say(f"nx-27017 at {mongo.uri} (data in {work}); load average {meter.load0}")
            settings = settings_for(
                mongo.uri,
                f"bench_admin_{when.replace('-', '_')}",
                redis_url=None,
                chatadmin_debug=False,
                chatadmin_secret_key=secret,
                chatadmin_secure_cookies=False,  # plain http on loopback
                chatadmin_auto_migrate=False,  # migrated below, before seeding
                chatadmin_data_dir=work / "app-data",
                chatadmin_log_level="WARNING",
            )
            database = await open_database(settings)  # Beanie, the product's indexes
            say(f"database {database.db.name}: migrated")

            plans = plan_threads(
                args.messages, args.threads, args.orgs, args.users, args.days, rng, end_ms
            )
            templates = message_templates(rng)
            stream = all_messages(plans, templates, rng)
            coll = Message.get_pymongo_collection()
            await create_admin_user(ADMIN_USER, ADMIN_PASSWORD, "admin")
            pages, chosen = choose_pages(first_threads(plans, args.sizes[0]), end_ms, args.days)
            users = {"all orgs": staff(), "scoped": staff(chosen["thread"].org_id)}
            runs: list[SizeRun] = []
            have = 0
            for size in args.sizes:
                say(
                    f"seeding to {size:,} messages ({len(plans):,} threads planned for "
                    f"{args.messages:,}), {args.orgs} orgs, {args.users} users, {args.days} days, "
                    f"batches of {args.batch:,} ..."
                )
                done = await insert_batches(
                    coll, itertools.islice(stream, size - have), args.batch, "seeded"
                )
                have += done["count"]
                seeded = {
                    "messages": have,
                    "stored": await coll.estimated_document_count(),
                    "threads": threads_started(plans, have),
                    "seconds": round(done["seconds"], 1),
                    "insert_seconds": round(done["insert_seconds"], 1),
                    "messages_per_second": round(done["count"] / done["seconds"], 1),
                    "avg_doc_bytes": int(statistics.mean(
                        len(json.dumps(t, default=str)) for ts in templates.values() for t in ts
                    )),
                }  # fmt: skip
                say(f"  {seeded['messages_per_second']:,.0f} messages/s ({done['seconds']:.0f} s)")
                await settle(nx_pid)
                run = SizeRun(
                    size, seeded, {p.name: {} for p in pages}, {p.name: {} for p in pages}
                )
                runs.append(run)

                say(f"ours: {LIST_PATH} as {ADMIN_USER} (admin), {args.repeats} repeats per page")
                for name, t in (
                    await time_ours_pages(
                        settings, database, pages, args, nx_pid, run.figures, "ours"
                    )
                ).items():
                    run.results[name]["ours"] = t
                say(
                    f"ours, direct reads (no HTTP, no rendering), {args.detail_repeats} repeats; "
                    f"scoped = an admin of {chosen['thread'].org_id}"
                )
                await time_ours_reads(pages, users, args, nx_pid, run.results, run.figures)
                if args.stock and size == args.sizes[0]:
                    await time_stock(secret, pages, args, nx_pid, run.results, run.figures)
                    run.stock = True
                if args.what_if and size == args.sizes[-1]:
                    run.what_if = await time_what_if(
                        settings, database, pages, args, nx_pid, run.results, run.figures, users
                    )

            load = meter.stop().load
            text, md, result = report(args, info, load, runs, pages, chosen, patched)
            result["total_seconds"] = round(time.perf_counter() - t_start, 1)
            print(text, flush=True)
            out = write_results(args, "admin_list", when, result)
            out.with_suffix(".md").write_text(md)
            print(f"  figures written to {out} and {out.with_suffix('.md')}", flush=True)
            print(f"  total run {time.perf_counter() - t_start:.0f} s", flush=True)
            ours_ok = all(
                run.results[p.name]["ours"].samples and not run.results[p.name]["ours"].errors
                for run in runs
                for p in pages
            )
            return 0 if ours_ok else 1
        finally:
            if database is not None:
                with contextlib.suppress(Exception):
                    await database.close()
            mongo.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for name in ("chatadmin", "starlette_admin", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return run_main(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
