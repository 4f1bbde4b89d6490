#!/usr/bin/env python3
"""How the shape of a stored message changes what a server costs to hand it over.

The export reads each thread's messages in seq order, and on nx-27017 that read is the export's
ceiling (docs/benchmarks.md, "Import and export"). nx-27017's cost per document grows with its
number of values: it decodes each stored document from JSON, walks every value, and encodes
BSON. A message used to be stored with every optional field, most of them null or empty; a new
one now leaves them out (`Message.SPARSE_FIELDS`). This script measures what that saves:

- builds `--messages` messages with the product's own `build_message` (threads of 1,000, half
  assistant turns with AI metadata), stored with every field ("full", as before);
- inserts the same messages as the product stores them now into a second collection
  ("sparse": `Message.storage_fields()`);
- reads both back `--repeats` times, alternately, as the export does (thread by thread, visible
  messages in seq order, raw BSON never decoded) and prints messages/s of each.

    .venv/bin/python bench/doc_shape.py                        # nx-27017, 50,000 messages
    .venv/bin/python bench/doc_shape.py --server secantusdb --in-memory --messages 15000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bson.codec_options import CodecOptions  # noqa: E402
from bson.raw_bson import RawBSONDocument  # noqa: E402
from pymongo import AsyncMongoClient  # noqa: E402

from bench.common.cli import add_run_args, parse, run_main  # noqa: E402
from bench.common.data import WORDS  # noqa: E402
from bench.common.report import say  # noqa: E402
from bench.common.servers import database_server, open_database, scratch, settings_for  # noqa: E402
from chatadmin.models import Message  # noqa: E402
from chatadmin.models.base import TenantDocument  # noqa: E402
from chatadmin.services.messages import build_message, visible  # noqa: E402
from chatadmin.testservers import TEST_SERVERS  # noqa: E402

ORG = "bench"
PER_THREAD = 1000
RAW = CodecOptions(document_class=RawBSONDocument)


def built(n: int) -> list[Message]:
    """`n` messages, built as the product builds them."""
    start, docs = datetime(2024, 1, 1, tzinfo=UTC), []
    for i in range(n):
        thread, seq = divmod(i, PER_THREAD)
        fields: dict = {
            "message_id": f"t{thread:05d}-{seq}",
            "role": "user" if seq % 2 == 0 else "assistant",
            "content": " ".join(WORDS[(thread + seq * k) % len(WORDS)] for k in range(24)),
            "user_id": f"user-{thread // 50}",
            "created_at": start + timedelta(minutes=thread, seconds=seq),
        }
        if fields["role"] == "assistant":
            fields["ai_metadata"] = {"model": "bench-1", "input_tokens": 40, "output_tokens": 120}
        msg = build_message(ORG, f"t{thread:05d}", **fields)
        msg.seq = seq
        docs.append(msg)
    return docs


async def read(coll, threads: list[str]) -> float:
    """Messages/s of the export's read of every thread."""
    began, count = time.perf_counter(), 0
    for thread in threads:
        cursor = coll.find(visible(ORG, thread)).sort([("seq", 1)]).batch_size(500)
        while page := await cursor.to_list(500):
            count += len(page)
    return count / (time.perf_counter() - began)


async def run(args: argparse.Namespace) -> int:
    with scratch("chatadmin-bench-shape-", args.keep_data) as work:
        server = database_server(args.server, work / "db", in_memory=args.in_memory)
        database = await open_database(settings_for(server.uri, "bench_shape"))  # the models
        client = AsyncMongoClient(server.uri)
        try:
            messages = built(args.messages)
            docs = [TenantDocument.storage_fields(m) for m in messages]  # every field
            lean = [m.storage_fields() for m in messages]
            say(
                f"{args.messages:,} messages on {args.server}: {len(docs[1])} fields in "
                f"full, {len(lean[1])} sparse (an assistant turn)"
            )
            threads = sorted({d["thread_id"] for d in docs})
            colls = {}
            for name, batch in (("full", docs), ("sparse", lean)):
                coll = client["bench_shape"][name.replace(" ", "_")]
                await coll.create_index([("thread_id", 1)])
                for i in range(0, len(batch), 1000):
                    await coll.insert_many(batch[i : i + 1000], ordered=False)
                colls[name] = coll.with_options(codec_options=RAW)
            rates: dict[str, list[float]] = {name: [] for name in colls}
            for _ in range(args.repeats):
                for name, coll in colls.items():
                    rates[name].append(await read(coll, threads))
        finally:
            await client.close()
            await database.close()
            server.stop()
    base = statistics.median(rates["full"])
    for name, got in rates.items():
        mid = statistics.median(got)
        runs = ", ".join(f"{r:,.0f}" for r in got)
        say(f"  {name:<10} median {mid:>8,.0f} messages/s ({runs}); {mid / base:.2f}x full")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=TEST_SERVERS, default="nx-27017")
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3, help="reads of each collection (3)")
    ap.add_argument("--in-memory", action="store_true", help="SecantusDB in memory")
    add_run_args(ap)
    return run_main(run(parse(ap, argv)))


if __name__ == "__main__":
    sys.exit(main())
