"""Stored documents built by the product's models, written fast with raw `insert_many`.

A benchmark that reads at scale needs a large database quickly, and exactly as the product
stores it. So a few hundred messages of each kind are built by the product (`build_message`,
then `stamped().storage_fields()`, the product's own bulk-insert path) and every seeded
message is a copy of one of them with its own ids (its `_id` keyed by org and message id, as
the product keys it), org, user, thread, seq and times, written with `insert_many` in batches
(no service layer, no per-document validation).
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bench.common import data
from bench.common.report import say
from chatadmin.models.base import doc_key
from chatadmin.services.messages import build_message

TEMPLATES_PER_KIND = 300
KINDS = ("user", "assistant", "assistant_tool", "tool")


def message_templates(rng: random.Random, per_kind: int = TEMPLATES_PER_KIND) -> dict[str, list]:
    """Stored message documents of each kind in KINDS, built by the product and encoded as its
    bulk inserts store them. Needs Beanie initialised."""
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    kinds: dict[str, list[dict]] = {k: [] for k in KINDS}
    for i in range(per_kind):
        tool_id = f"toolu_{i:05d}"
        ticker = rng.choice(data.TICKERS)
        built = {
            "user": build_message(
                "tpl-org", "tpl-thread", role="user", user_id="tpl-user",
                content=data.text(rng, 1, 3), created_at=when,
            ),
            "assistant": build_message(
                "tpl-org", "tpl-thread", role="assistant", content=data.text(rng, 3, 10),
                ai_metadata=data.ai_metadata(rng, 300, 4000), created_at=when,
            ),
            "assistant_tool": build_message(
                "tpl-org", "tpl-thread", role="assistant",
                ai_metadata=data.ai_metadata(rng, 300, 4000), created_at=when,
                content=[
                    {"type": "text", "text": data.text(rng, 1, 2)},
                    data.tool_use(rng, tool_id, ticker),
                ],
            ),
            "tool": build_message(
                "tpl-org", "tpl-thread", role="tool", created_at=when,
                content=[
                    {"type": "tool_result", "tool_use_id": tool_id, "is_error": False,
                     "content": data.price_rows(rng, ticker, 30)},
                ],
            ),
        }  # fmt: skip
        for kind, message in built.items():
            kinds[kind].append(message.stamped().storage_fields())
    return kinds


def this_hour_ms() -> int:
    """The start of this hour in UTC, epoch ms: where seeded conversations end."""
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return int(now.timestamp()) * 1000


@dataclass
class ThreadPlan:
    """One conversation to seed: who, how many messages, from when."""

    thread_id: str
    org_id: str
    user_id: str
    size: int
    start_ms: int


def plan_threads(
    messages: int, threads: int, orgs: int, users: int, days: int, rng: random.Random, end_ms: int
) -> list[ThreadPlan]:
    """`threads` threads whose sizes (uniform around the mean) add up to exactly `messages`;
    each starts at a uniformly random time in the `days` before `end_ms` and its messages
    follow 2 s to 5 min apart. Orgs have uneven weights; each user belongs to one org."""
    n_threads = min(threads, messages)
    mean = messages / n_threads
    sizes = [rng.randint(1, max(1, round(2 * mean - 1))) for _ in range(n_threads)]
    resize(sizes, messages, rng)
    org_ids = [f"org-{k + 1:02d}" for k in range(orgs)]
    weights = [1.0 / (k + 1) for k in range(orgs)]  # org-01 is the biggest
    people = [(f"user-{u:05d}", rng.choices(org_ids, weights)[0]) for u in range(users)]
    span_ms = days * 86_400_000
    plans = []
    for i, size in enumerate(sizes):
        user_id, org_id = rng.choice(people)
        duration = size * 151_000  # mean gap
        start = end_ms - span_ms + rng.randrange(max(1, span_ms - duration))
        plans.append(ThreadPlan(f"thread-{i:06d}", org_id, user_id, size, start))
    return plans


def resize(sizes: list[int], total: int, rng: random.Random, keep: frozenset[int] = frozenset()):
    """Add or take one at a time from random entries (never below 1, never those in `keep`)
    until `sizes` adds up to `total`."""
    diff = total - sum(sizes)
    free = [i for i in range(len(sizes)) if i not in keep]
    while diff:
        i = rng.choice(free)
        if diff > 0:
            sizes[i] += 1
            diff -= 1
        elif sizes[i] > 1:
            sizes[i] -= 1
            diff += 1


def turn_kinds(size: int, rng: random.Random) -> list[str]:
    """The kinds of a thread's `size` messages: turns of a user question and an answer, a
    third of them through a tool (assistant tool_use, tool result, final answer)."""
    kinds: list[str] = []
    while len(kinds) < size:
        kinds.append("user")
        if rng.random() < 0.35:
            kinds += ["assistant_tool", "tool", "assistant"]
        else:
            kinds.append("assistant")
    return kinds[:size]


def thread_documents(plan: ThreadPlan, templates: dict[str, list[dict]], rng: random.Random):
    """The thread's stored message documents, seq 0..size-1 (see `turn_kinds`)."""
    ms = plan.start_ms
    for seq, kind in enumerate(turn_kinds(plan.size, rng)):
        doc = dict(rng.choice(templates[kind]))
        doc["message_id"] = f"{plan.thread_id}-m{seq:04d}"
        doc["_id"] = doc_key(plan.org_id, doc["message_id"])  # as the product keys it
        doc["org_id"] = plan.org_id
        doc["thread_id"] = plan.thread_id
        doc["user_id"] = plan.user_id if kind == "user" else None
        doc["seq"] = seq
        doc["created_at"] = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        doc["created_at_ms"] = ms
        doc["updated_at_ms"] = ms
        yield doc
        ms += rng.randint(2_000, 300_000)


def all_messages(plans: Iterable[ThreadPlan], templates: dict, rng: random.Random) -> Iterator:
    """Every planned thread's message documents, thread after thread."""
    for plan in plans:
        yield from thread_documents(plan, templates, rng)


async def insert_batches(coll, docs: Iterable[dict], batch: int, label: str = "") -> dict:
    """`insert_many` (unordered) of `docs` in batches of `batch`; with `label`, a progress line
    per batch on stderr. Returns the count, the wall seconds and those spent inserting."""
    done, pending, insert_s = 0, [], 0.0
    t0 = time.perf_counter()

    async def flush() -> None:
        nonlocal done, pending, insert_s
        t = time.perf_counter()
        await coll.insert_many(pending, ordered=False)
        insert_s += time.perf_counter() - t
        done += len(pending)
        pending = []
        if label:
            wall = time.perf_counter() - t0
            say(f"  {label} {done:>9,}  {done / wall:6,.0f}/s  {wall:6.0f} s", end="\r")

    for doc in docs:
        pending.append(doc)
        if len(pending) == batch:
            await flush()
    if pending:
        await flush()
    if label:
        say("")
    wall = time.perf_counter() - t0
    return {"count": done, "seconds": wall, "insert_seconds": insert_s}
