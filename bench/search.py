#!/usr/bin/env python3
"""Full-text message search at scale, on either test server and in either search mode.

One run starts one server (`--server nx-27017|secantusdb`, throwaway storage), opens a database
in `--mode` (`auto` picks text where the server has it, else terms), applies the migrations,
and stores `--messages` messages of one org in batches (raw `insert_many` of the documents the
product stores: `Message(...).stamped().storage_fields()`, so terms are computed as ingest
computes them). Texts draw 12-40 words from a 20,000-word Zipf vocabulary, plus planted words:
`rare` in 20 messages, `medium` in 1 %, `common` in 20 %. At each size of `--sizes` it times
the admin message list's search (the query the admin builds: `search.condition(q)` plus the org
scope, newest first, 25 rows, and the "1,000+" capped count that the same page runs) for each
planted word and for a two-word query, against a baseline measured in the same run: the same
page answered by an unindexed case-insensitive regex over `text` (what a search without any
index costs). It prints p50/p95 in ms, the ratio baseline/ours, and how each p50 grew from the
first size to the last (goal: the rare-word page stays flat, <= 1.5x, as the collection grows).

    .venv/bin/python bench/search.py --server secantusdb --sizes 10000,100000
    .venv/bin/python bench/search.py --server nx-27017 --mode terms --sizes 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pymongo.errors import OperationFailure  # noqa: E402

from bench.common.data import vocabulary  # noqa: E402
from bench.common.seeding import insert_batches  # noqa: E402
from bench.common.servers import (  # noqa: E402
    database_server,
    open_database,
    scratch,
    settings_for,
    stop_on_sigterm,
)
from bench.common.timing import percentile  # noqa: E402
from chatadmin import search  # noqa: E402
from chatadmin.clock import utcnow  # noqa: E402
from chatadmin.models import Message  # noqa: E402
from chatadmin.testservers import TEST_SERVERS  # noqa: E402

ORG = "bench"
PLANTED = {"rare": "zebrafish", "medium": "volatility", "common": "portfolio"}
QUERIES = {
    "rare word": "zebrafish",
    "medium word": "volatility",
    "common word": "portfolio",
    "two words": "portfolio volatility",
    "no match": "qqqzzzxxx",
}
PAGE, CAP = 25, 1000


def texts(count: int, start: int, vocab: list[str], weights: list[float], rng: random.Random):
    for i in range(start, start + count):
        words = rng.choices(vocab, weights=weights, k=rng.randint(12, 40))
        if i % 5 == 0:
            words.append(PLANTED["common"])
        if i % 100 == 7:
            words.append(PLANTED["medium"])
        if i % 50_000 == 11 and i // 50_000 < 20:
            words.append(PLANTED["rare"])
        yield i, " ".join(words)


def documents(upto: int, have: int, vocab, weights, rng):
    """Messages `have`..`upto`-1 as the product stores them (terms computed as ingest does)."""
    now = utcnow()
    for i, text in texts(upto - have, have, vocab, weights, rng):
        msg = Message(org_id=ORG, thread_id=f"t{i // 200}", seq=i % 200, role="user", text=text,
                      message_id=f"m{i}", created_at=now)  # fmt: skip
        msg.created_at_ms += i  # distinct, increasing times
        yield msg.stamped().storage_fields()


async def fill(upto: int, have: int, vocab, weights, rng) -> float:
    """Store messages `have`..`upto`-1; returns messages per second."""
    coll = Message.get_pymongo_collection()
    done = await insert_batches(coll, documents(upto, have, vocab, weights, rng), 1000)
    return done["count"] / done["seconds"]


async def page(query: dict) -> tuple[int, int]:
    """The admin list's two reads: the first page newest first, and the capped count."""
    coll = Message.get_pymongo_collection()
    rows = (
        await coll.find(query, {"_id": 1})
        .sort([("created_at_ms", -1), ("_id", -1)])
        .limit(PAGE)
        .to_list()
    )
    counted = await coll.find(query, {"_id": 1}).limit(CAP + 1).to_list()
    return len(rows), len(counted)


async def timed(query: dict, repeats: int) -> tuple[list[float], tuple[int, int]]:
    samples, shape = [], (0, 0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        shape = await page(query)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples, shape


def unindexed(word: str) -> dict:
    """The baseline's condition for one word: a case-insensitive whole-word regex on `text`."""
    return {"text": {"$regex": rf"\b{word}\b", "$options": "i"}}


async def measure_size(repeats: int) -> dict:
    """Each query's page, ours and the scan, at the current size; prints a row each."""
    print(f"{'query':<14}{'rows':>6}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'scan p50':>10}{'scan/ours':>10}")  # fmt: skip
    rows = {}
    for label, q in QUERIES.items():
        ours_q = {"org_id": ORG, **(search.condition(q) or {"_id": {"$in": []}})}
        words = search.query_words(q)
        scan_q = {"org_id": ORG, "$and": [unindexed(w) for w in words] or [{"_id": None}]}
        samples, shape = await timed(ours_q, repeats)
        base, base_shape = await timed(scan_q, max(1, repeats // 3))
        assert shape == base_shape, (label, shape, base_shape)  # same answer
        p50, p95, base50 = (
            statistics.median(samples),
            percentile(samples, 0.95),
            statistics.median(base),
        )
        rows[label] = {"p50": p50, "p95": p95, "scan_p50": base50,
                       "rows": shape[0], "count": shape[1]}  # fmt: skip
        count = f"{shape[1] - 1:,}+" if shape[1] > CAP else f"{shape[1]:,}"
        print(f"{label:<14}{shape[0]:>6}{count:>7}{p50:>9.1f}{p95:>9.1f}"
              f"{base50:>10.1f}{base50 / p50:>9.1f}x", flush=True)  # fmt: skip
    return rows


async def run(args) -> dict:
    rng = random.Random(20261202)
    vocab = vocabulary(20_000, rng, exclude=set(PLANTED.values()))
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    report: dict = {"server": args.server, "sizes": {}}
    with scratch("chatadmin-search-") as work:
        server = database_server(args.server, work)
        try:
            settings = settings_for(server.uri, "bench_search", chatadmin_search_mode=args.mode)
            database = await open_database(settings)
            report["mode"] = database.search_mode
            print(f"{database.info.label()}, search mode {database.search_mode}", flush=True)
            have = 0
            for size in args.sizes:
                rate = await fill(size, have, vocab, weights, rng)
                have = size
                print(f"\n{size:,} messages (stored at {rate:,.0f}/s)", flush=True)
                report["sizes"][size] = await measure_size(args.repeats)
            try:  # throwaway storage: the drop only frees memory sooner
                await database.client.drop_database("bench_search")
            except OperationFailure as exc:  # SecantusDB 0.7.0b3 can fail it after large loads
                print(f"(dropDatabase failed on the server: {exc.details.get('errmsg')})")
            await database.close()
        finally:
            server.stop()
    first, last = args.sizes[0], args.sizes[-1]
    if first != last:
        print(f"\ngrowth of p50 from {first:,} to {last:,} messages (goal: rare word <= 1.5x):")
        for label in QUERIES:
            grow = report["sizes"][last][label]["p50"] / report["sizes"][first][label]["p50"]
            verdict = " PASS" if grow <= 1.5 else " MISS"
            print(f"  {label:<14}{grow:6.2f}x{verdict if label == 'rare word' else ''}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=TEST_SERVERS, default="secantusdb")
    parser.add_argument("--mode", choices=["auto", "text", "terms"], default="auto")
    parser.add_argument("--sizes", default="10000,100000",
                        type=lambda s: sorted(int(x) for x in s.split(",")))  # fmt: skip
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    stop_on_sigterm()
    report = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
