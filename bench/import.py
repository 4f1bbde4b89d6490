#!/usr/bin/env python3
"""Import and export at scale: a generated native JSONL file through `chatadmin.transfer`.

One run starts one server (`--server nx-27017|secantusdb`, throwaway storage), opens the
database in-process and applies the migrations, then:

  (a) generates a native JSONL file of `--messages` messages (threads of `--per-thread`,
      alternating user and assistant, assistant turns with AI metadata; a user per 50 threads),
      streamed to disk;
  (b) imports it with the importer `manage.py import` runs (streamed read, whole-conversation
      validation, `ingest` in chunks of `--batch`), timing it and sampling this process's RSS;
  (c) baseline, same run, same server: the same stored message documents (read back from (b),
      so byte for byte the same) written with PyMongo `insert_many` in batches of `--batch`
      into a second database with the product's indexes (only the inserts are timed);
  (d) exports the org back to a native JSONL file, timing it and sampling RSS;
  (e) baseline of (d), same run: the same messages read with PyMongo, thread by thread in seq
      order as the export reads them, as raw BSON that is never decoded: how fast the server
      can hand them over at all;
  (f) the export's own work without the server: the first `--own-sample` messages of (e),
      held in memory as raw pages, turned into native lines (`native_page`) and written to a
      file: how fast the export would run on a server that hands messages over faster.

It prints messages/s of (b), (c) and their ratio (goal: import >= 0.5 x raw insert_many), the
peak RSS of the import (goal <= 300 MB), the export's messages/s (goal >= 20,000) and its RSS
at start, peak and end (goal: flat), and writes the figures as JSON under bench/results/.

    .venv/bin/python bench/import.py                      # quick: 20,000 messages
    .venv/bin/python bench/import.py --messages 1000000   # the full run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common.data import WORDS  # noqa: E402
from bench.common.report import RESULTS, write_json  # noqa: E402
from bench.common.servers import (  # noqa: E402
    database_server,
    open_database,
    scratch,
    settings_for,
    stop_on_sigterm,
)
from chatadmin.db import Database  # noqa: E402
from chatadmin.indexes import declared_indexes  # noqa: E402
from chatadmin.models import Message, Thread  # noqa: E402
from chatadmin.services import messages as messages_service  # noqa: E402
from chatadmin.settings import Settings  # noqa: E402
from chatadmin.testservers import TEST_SERVERS  # noqa: E402
from chatadmin.transfer import Importer, Options, Source, export, exporter  # noqa: E402

ORG = "bench"
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


class Sampler:
    """This process's RSS, sampled every 50 ms while a phase runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_mb())
            self._stop.wait(0.05)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(rss_mb())


def generate(path: Path, messages: int, per_thread: int) -> int:
    """Write the native file; returns the number of threads."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    threads = 0
    with open(path, "w") as out:
        out.write(json.dumps({"chatadmin": "native", "version": 1, "org_id": "gen"}) + "\n")
        written = 0
        while written < messages:
            user = f"user-{threads // 50}"
            if threads % 50 == 0:
                data = {"username": user, "email": f"{user}@example.com"}
                out.write(json.dumps({"type": "user", "id": user, "data": data}) + "\n")
            tid = f"t{threads:07d}"
            when = start + timedelta(minutes=threads)
            data = {
                "user_id": user,
                "title": f"Conversation {threads}",
                "created_at": when.isoformat(),
            }
            out.write(json.dumps({"type": "thread", "id": tid, "data": data}) + "\n")
            for n in range(min(per_thread, messages - written)):
                role = "user" if n % 2 == 0 else "assistant"
                words = " ".join(WORDS[(threads + n * k) % len(WORDS)] for k in range(24))
                data = {
                    "thread_id": tid,
                    "role": role,
                    "content": f"{n}: {words}",
                    "created_at": (when + timedelta(seconds=n)).isoformat(),
                }
                if role == "assistant":
                    data["ai_metadata"] = {
                        "model": "bench-1",
                        "input_tokens": 40,
                        "output_tokens": 120,
                        "response_ms": 900,
                    }
                out.write(json.dumps({"type": "message", "id": f"{tid}-{n}", "data": data}) + "\n")
            written += min(per_thread, messages - written)
            threads += 1
    return threads


async def raw_baseline(database: Database, settings: Settings, batch: int) -> tuple[int, float]:
    """insert_many of the stored messages into a second database; (count, seconds inserting)."""
    other = database.client[settings.mongodb_db_name + "_raw"]
    target = other[Message.Settings.name]
    await target.create_indexes(declared_indexes(Message))  # the product's, for the search mode
    cursor = Message.get_pymongo_collection().find({"org_id": ORG}).batch_size(batch)
    count, spent = 0, 0.0
    while docs := await cursor.to_list(batch):
        began = time.perf_counter()
        await target.insert_many(docs, ordered=False)
        spent += time.perf_counter() - began
        count += len(docs)
    return count, spent


async def raw_read(keep: int) -> tuple[int, float, list[list[RawBSONDocument]]]:
    """The export's reads alone: each thread's visible messages in seq order, undecoded; the
    first pages, up to `keep` messages, are kept."""
    raw = CodecOptions(document_class=RawBSONDocument)
    coll = Message.get_pymongo_collection().with_options(codec_options=raw)
    began, count, kept = time.perf_counter(), 0, []
    async for thread in Thread.find({"org_id": ORG}).sort([("created_at_ms", 1)]):
        query = messages_service.visible(ORG, thread.thread_id)
        cursor = coll.find(query).sort([("seq", 1)]).batch_size(exporter.PAGE)
        while docs := await cursor.to_list(exporter.PAGE):
            if count < keep:
                kept.append(docs)
            count += len(docs)
    return count, time.perf_counter() - began, kept


def own_work(pages: list[list[RawBSONDocument]], path: Path) -> tuple[int, float]:
    """The export's work on pages already read: native lines, written to `path`."""
    began, count = time.perf_counter(), 0
    with open(path, "w", encoding="utf-8") as out:
        for page in pages:
            lines, _users, _feedback = exporter.native_page(page)
            out.write(lines)
            count += len(page)
    return count, time.perf_counter() - began


async def run(args: argparse.Namespace) -> dict:
    """The whole run in a scratch directory, removed at the end."""
    with scratch("bench-import-") as work:
        return await run_in(args, work)


async def run_in(args: argparse.Namespace, work: Path) -> dict:
    """Generate, import, the raw baseline and export, on a server of its own under `work`."""
    server = database_server(args.server, work / "db", in_memory=args.in_memory)
    try:
        # as `manage.py import` and `export` run: commands wait as long as the server needs
        settings = settings_for(server.uri, "bench_import", chatadmin_mongo_timeout_ms=0)
        database = await open_database(settings)
        source = work / "native.jsonl"
        began = time.perf_counter()
        threads = generate(source, args.messages, args.per_thread)
        print(
            f"generated {args.messages:,} messages in {threads:,} threads "
            f"({source.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - began:.1f} s"
        )

        start_rss = rss_mb()
        options = Options(org_id=ORG, max_batch=args.batch)
        with Sampler() as imp_rss:
            began = time.perf_counter()
            size = source.stat().st_size
            marks = iter(range(1, 11))
            mark = next(marks)

            def progress(done: int) -> None:  # a line per tenth of the file
                nonlocal mark
                if done * 10 >= mark * size and mark <= 10:
                    rate = done / size * args.messages / (time.perf_counter() - began)
                    print(f"  import {mark * 10} %: ~{rate:,.0f} messages/s", flush=True)
                    mark = next(marks, 11)

            summary = await Importer(options, progress).run(Source.file(source))
            import_s = time.perf_counter() - began
        assert summary.errors == [], summary.errors[:3]
        assert summary.messages["created"] == args.messages, summary.messages
        import_rate = args.messages / import_s
        print(
            f"import: {import_rate:,.0f} messages/s ({import_s:.1f} s), RSS peak "
            f"{max(imp_rss.samples):.0f} MB (start {start_rss:.0f} MB)"
        )

        count, raw_s = await raw_baseline(database, settings, args.batch)
        raw_rate = count / raw_s
        print(f"raw insert_many: {raw_rate:,.0f} messages/s ({raw_s:.1f} s)")

        out = work / "export.jsonl"
        with Sampler() as exp_rss:
            done = await export(ORG, out)
        export_rate = done.messages / done.seconds
        print(
            f"export: {export_rate:,.0f} messages/s ({done.seconds:.1f} s), RSS start "
            f"{exp_rss.samples[0]:.0f} / peak {max(exp_rss.samples):.0f} / end "
            f"{exp_rss.samples[-1]:.0f} MB"
        )
        read, read_s, pages = await raw_read(args.own_sample)
        read_rate = read / read_s
        print(
            f"raw read of the same messages: {read_rate:,.0f} messages/s ({read_s:.1f} s); "
            f"export / raw read {export_rate / read_rate:.2f}"
        )
        own, own_s = own_work(pages, work / "own.jsonl")
        own_rate = own / own_s
        del pages
        print(
            f"the export's own work on {own:,} messages already read: {own_rate:,.0f} "
            f"messages/s ({own_s:.2f} s), one core"
        )
        await database.client.drop_database(settings.mongodb_db_name)
        await database.client.drop_database(settings.mongodb_db_name + "_raw")
        await database.close()
    finally:
        server.stop()
    ratio = import_rate / raw_rate
    figures = {
        "server": args.server + (" (in memory)" if args.in_memory else ""),
        "messages": args.messages,
        "per_thread": args.per_thread,
        "batch": args.batch,
        "import_messages_per_s": round(import_rate),
        "raw_insert_many_messages_per_s": round(raw_rate),
        "ratio": round(ratio, 2),
        "import_peak_rss_mb": round(max(imp_rss.samples)),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "export_messages_per_s": round(export_rate),
        "raw_read_messages_per_s": round(read_rate),
        "export_own_work_messages_per_s": round(own_rate),
        "export_rss_mb": [
            round(exp_rss.samples[0]),
            round(max(exp_rss.samples)),
            round(exp_rss.samples[-1]),
        ],
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(
        f"ratio import / raw insert_many: {ratio:.2f} (goal >= 0.5): "
        f"{'ok' if ratio >= 0.5 else 'MISSED'}"
    )
    print(
        f"import peak RSS {figures['import_peak_rss_mb']} MB (goal <= 300): "
        f"{'ok' if figures['import_peak_rss_mb'] <= 300 else 'MISSED'}"
    )
    print(
        f"export {export_rate:,.0f} messages/s (goal >= 20,000): "
        f"{'ok' if export_rate >= 20_000 else 'MISSED'}"
    )
    return figures


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=TEST_SERVERS, default="nx-27017")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--per-thread", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000, help="ingest and insert_many batch")
    parser.add_argument(
        "--own-sample", type=int, default=50_000, help="messages of (f), held in memory"
    )
    parser.add_argument(
        "--in-memory",
        action="store_true",
        help="SecantusDB in memory (up to about 40,000 messages); on disk it imports slowly",
    )
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args()
    # A SIGTERM (a `timeout`, a killed job) unwinds like Ctrl-C: the server is stopped and the
    # work dir removed by `run`, instead of a server left running on its own.
    stop_on_sigterm()
    figures = asyncio.run(run(args))
    if not args.no_save:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = write_json(RESULTS / f"import-{args.server}-{args.messages}-{stamp}.json", figures)
        print(f"figures: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
