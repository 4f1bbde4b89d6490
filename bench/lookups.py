#!/usr/bin/env python3
"""The query shapes behind keyed ids (docs/mongo-compat.md): how each server's cost of a batch
lookup, an upsert and a `find_one_and_update` grows with the collection.

One run starts one server (`--server`, throwaway storage) and one collection shaped like
`chat_messages`' id index (a unique `{org_id, message_id}` and a single `message_id` index,
`_id` keyed as the product keys it: `org~message_id`). At each size of `--sizes` it times, on
the same collection in the same run:

- a batch lookup of 500 ids (half present) by `{org_id, message_id: {$in}}`, against the same
  lookup by `{_id: {$in}}` (what `TenantDocument.keyed` sends);
- 200 upserts filtered by `{org_id, message_id}` (one bulk write), against the same by `_id`;
- 200 `find_one_and_update` by `_id`, against 200 conditional updates by `_id` in one bulk
  write (how seqs are reserved on many threads);
- the same conditional updates with a status condition written as `{$in: [two values]}`,
  against `{$ne: third value}` (`LIVE_FILTER`, what the reservations send);
- a `$addToSet` of 130 names (`$each`) into one small document, against a `$set` of the
  merged list (how a write's journal record names its threads).

It prints each shape's p50 per size and how it grew from the first size to the last; the goal
of the product's shapes: flat (<= 1.5x) as the collection grows.

    .venv/bin/python bench/lookups.py --server nx-27017 --sizes 10000,100000
    .venv/bin/python bench/lookups.py --server secantusdb --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pymongo import AsyncMongoClient, ReturnDocument, UpdateOne  # noqa: E402

from bench.common.cli import add_run_args, add_size_args, parse, run_main  # noqa: E402
from bench.common.report import figures_head, machine, say, stamp, write_results  # noqa: E402
from bench.common.servers import database_server, scratch  # noqa: E402
from bench.common.timing import percentile  # noqa: E402
from chatadmin.models.base import doc_key  # noqa: E402
from chatadmin.testservers import TEST_SERVERS  # noqa: E402

ORG = "bench"
LOOKUP, WRITES = 500, 200
SHAPES = {  # shape -> (what the product sends instead, or None for the product's own)
    "$in on message_id (500 ids)": "_id $in (500 ids)",
    "_id $in (500 ids)": None,
    "upserts by {org_id, message_id} (200)": "upserts by _id (200)",
    "upserts by _id (200)": None,
    "find_one_and_update by _id (200)": "conditional bulk update by _id (200)",
    "conditional bulk update by _id (200)": None,
    "... and status $in (200)": "... and status $ne (200)",
    "... and status $ne (200)": None,
    "$addToSet $each of 130 names": "$set of the list of 130 names",
    "$set of the list of 130 names": None,
}
NAMES = 130


async def grow(coll, ids: list[str], upto: int, rng: random.Random) -> None:
    """Add documents until the collection holds `upto`."""
    while len(ids) < upto:
        batch = []
        for _ in range(min(1000, upto - len(ids))):
            mid = uuid.UUID(int=rng.getrandbits(128)).hex
            ids.append(mid)
            batch.append({"_id": doc_key(ORG, mid), "org_id": ORG, "message_id": mid,
                          "n": 0, "status": "active", "text": "x" * 400})  # fmt: skip
        await coll.insert_many(batch, ordered=False)


async def once(coll, shape: str, ids: list[str], rng: random.Random) -> float:
    """Run one shape once; returns its milliseconds."""
    present = rng.sample(ids, LOOKUP // 2)
    wanted = present + [uuid.uuid4().hex for _ in range(LOOKUP // 2)]
    some = rng.sample(ids, WRITES)
    started = time.perf_counter()
    if shape.startswith("$in on"):
        await coll.find({"org_id": ORG, "message_id": {"$in": wanted}}, {"_id": 1}).to_list()
    elif shape.startswith("_id $in"):
        keys = [doc_key(ORG, m) for m in wanted]
        await coll.find({"_id": {"$in": keys}, "org_id": ORG}, {"_id": 1}).to_list()
    elif shape.startswith("upserts by {"):
        await coll.bulk_write([UpdateOne({"org_id": ORG, "message_id": m}, {"$inc": {"n": 1}},
                                         upsert=True) for m in some], ordered=False)  # fmt: skip
    elif shape.startswith("upserts by _id"):
        await coll.bulk_write([UpdateOne({"_id": doc_key(ORG, m), "org_id": ORG},
                                         {"$inc": {"n": 1}}, upsert=True) for m in some],
                              ordered=False)  # fmt: skip
    elif shape.startswith("find_one_and_update"):
        for m in some:
            await coll.find_one_and_update({"_id": doc_key(ORG, m), "org_id": ORG},
                                           {"$inc": {"n": 1}}, projection={"n": 1},
                                           return_document=ReturnDocument.AFTER)  # fmt: skip
    elif shape.startswith("... and status"):
        status = {"$in": ["active", "archived"]} if "$in" in shape else {"$ne": "deleted"}
        await coll.bulk_write([UpdateOne({"_id": doc_key(ORG, m), "org_id": ORG,
                                          "status": status}, {"$inc": {"n": 1}})
                               for m in some], ordered=False)  # fmt: skip
    elif shape.endswith("130 names"):
        names = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(NAMES)]
        key = {"_id": f"journal-{uuid.uuid4().hex}"}
        await coll.insert_one({**key, "names": names[:5]})
        if shape.startswith("$addToSet"):
            await coll.update_one(key, {"$addToSet": {"names": {"$each": names}}})
        else:
            await coll.update_one(key, {"$set": {"names": sorted(set(names))}})
        await coll.delete_one(key)
    else:
        found = {
            d["_id"]: d["n"]
            async for d in coll.find(
                {"_id": {"$in": [doc_key(ORG, m) for m in some]}}, {"n": 1}, batch_size=WRITES
            )
        }
        await coll.bulk_write([UpdateOne({"_id": k, "org_id": ORG, "n": n}, {"$inc": {"n": 1}})
                               for k, n in found.items()], ordered=False)  # fmt: skip
    return (time.perf_counter() - started) * 1000


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    info = machine()
    say(f"bench/lookups.py on {args.server}, sizes {args.sizes}, {args.repeats} repeats")
    figures = {**figures_head("lookups.py", info, server=args.server), "sizes": {}}
    with scratch("chatadmin-bench-lookups-", args.keep_data) as work:
        server = database_server(args.server, work / "server")
        client = AsyncMongoClient(server.uri)
        try:
            coll = client["bench_lookups"]["docs"]
            await coll.create_index([("org_id", 1), ("message_id", 1)], unique=True)
            await coll.create_index([("message_id", 1)])
            ids: list[str] = []
            for size in args.sizes:
                await grow(coll, ids, size, rng)
                row = {}
                for shape in SHAPES:
                    samples = [await once(coll, shape, ids, rng) for _ in range(args.repeats)]
                    row[shape] = round(percentile(samples, 50), 2)
                figures["sizes"][size] = row
                say(f"  {size:>9,} documents: " + ", ".join(f"{k} {v} ms" for k, v in row.items()))
        finally:
            await client.close()
            server.stop()
    first, last = args.sizes[0], args.sizes[-1]
    say(f"\n  p50 in ms; growth from {first:,} to {last:,} documents (goal <= 1.5x)")
    ok = True
    for shape, instead in SHAPES.items():
        a, b = figures["sizes"][first][shape], figures["sizes"][last][shape]
        growth = b / a if a else float("inf")
        mine = instead is None
        ok &= (growth <= 1.5) or not mine
        note = "product's shape" if mine else f"the product sends: {instead}"
        say(f"  {shape:<40} {a:>9.1f} {b:>9.1f}  {growth:5.2f}x  {note}")
    figures["flat"] = ok
    path = write_results(args, f"lookups-{args.server}", stamp(), figures)
    say(f"  product's shapes flat: {'yes' if ok else 'NO'}; figures written to {path}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=TEST_SERVERS, default="nx-27017")
    add_size_args(ap, 100_000, "documents", "the collection grows to each size in turn")
    ap.add_argument("--repeats", type=int, default=5, help="runs of each shape per size (5)")
    add_run_args(ap)
    return run_main(run(parse(ap, argv)))


if __name__ == "__main__":
    sys.exit(main())
