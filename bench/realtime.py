#!/usr/bin/env python3
"""Real-time costs, each against a baseline measured in the same run, on a redis-server and a
test MongoDB server this script starts (free ports, throwaway storage):

1. rate-limit check: `RateLimiter.request()` (one Lua script over its window) per call, p50/p99,
   against one raw Redis `INCR` round trip on the same client (goal: <= 1.5x);
2. live-tail fan-out: `manage.py runserver` in its own process, `--listeners` SSE clients over
   real sockets, one writer appending messages through the REST API; delivery latency from the
   append's send to each listener's receipt, p50/p99 (goal: p99 <= 50 ms);
3. ingest with publishing on against off: the ingest service applying batches of 100
   messages, with the live-tail hub installed and without (goal: >= 0.9x).

    .venv/bin/python bench/realtime.py --server nx-27017 --listeners 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from bench.common.servers import (  # noqa: E402
    NO_RATE_LIMITS,
    database_server,
    open_database,
    scratch,
    settings_for,
    stop_on_sigterm,
)
from bench.common.timing import percentile  # noqa: E402
from chatadmin.realtime import events  # noqa: E402
from chatadmin.realtime.guard import Realtime  # noqa: E402
from chatadmin.realtime.ratelimit import RateLimiter  # noqa: E402
from chatadmin.services import audit  # noqa: E402
from chatadmin.services.ingest import Batch, EventIn, ingest  # noqa: E402
from chatadmin.settings import Settings  # noqa: E402
from chatadmin.testservers import (  # noqa: E402
    TEST_SERVERS,
    AppServer,
    RedisServer,
)


async def rate_limit_cost(settings: Settings, calls: int) -> dict:
    client = aioredis.from_url(settings.redis_url)
    limiter = RateLimiter(Realtime(client, "bench:"), settings)
    for _ in range(200):  # warm up: connections, the script's SHA
        await client.incr("bench:warm")
        await limiter.request("warm")
    raw, ours = [], []
    for i in range(calls):
        t0 = time.perf_counter()
        await client.incr(f"bench:raw:{i % 50}")
        raw.append((time.perf_counter() - t0) * 1e6)
        t0 = time.perf_counter()
        await limiter.request(f"k{i % 50}")
        ours.append((time.perf_counter() - t0) * 1e6)
    await client.aclose()
    return {
        "raw_p50_us": percentile(raw, 0.5),
        "raw_p99_us": percentile(raw, 0.99),
        "ours_p50_us": percentile(ours, 0.5),
        "ours_p99_us": percentile(ours, 0.99),
    }


def start_app(settings: Settings, workdir: Path) -> tuple[AppServer, dict]:
    """`manage.py runserver` in its own process on a fresh database, and an API key for it."""
    db_name = f"bench_rt_{uuid.uuid4().hex[:6]}"
    app = AppServer(
        settings.mongodb_uri, db_name, workdir, redis_url=settings.redis_url, env=NO_RATE_LIMITS
    ).start()
    key = app.create_api_key("bench", "ingest,read")
    return app, {"Authorization": f"Bearer {key}"}


async def fan_out(base: str, headers: dict, listeners: int, messages: int) -> dict:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=listeners + 10)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        await http.post("/api/v1/threads", json={"user_id": "u1", "thread_id": "t1"},
                        headers=headers)  # fmt: skip
        ready = asyncio.Event()
        opened = 0

        async def listen():
            nonlocal opened
            async with http.stream("GET", "/api/v1/threads/t1/events", headers=headers) as s:
                got = 0
                async for line in s.aiter_lines():
                    if line.startswith(": connected"):
                        opened += 1
                        if opened == listeners:
                            ready.set()
                    if line.startswith("data: ") and "text" in line:
                        sent = float(json.loads(line[6:])["text"])
                        latencies.append((time.time() - sent) * 1000)
                        got += 1
                        if got == messages:
                            return

        tasks = [asyncio.create_task(listen()) for _ in range(listeners)]
        await asyncio.wait_for(ready.wait(), 60)
        async with httpx.AsyncClient(base_url=base, timeout=30) as writer:
            for _ in range(messages):
                body = {"role": "user", "content": f"{time.time():.6f}"}
                await writer.post("/api/v1/threads/t1/messages", json=body, headers=headers)
                await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return {
        "listeners": listeners,
        "messages": messages,
        "deliveries": len(latencies),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
    }


async def ingest_cost(settings: Settings, batches: int) -> dict:
    database = await open_database(settings)
    client = aioredis.from_url(settings.redis_url)
    hub = Realtime(client, "bench:")
    actor = audit.Actor("api_key", "bench", via="ingest")
    rates = {}
    for label, installed in (("off", None), ("on", hub), ("off-again", None), ("on-again", hub)):
        events.install(installed)
        t0 = time.perf_counter()
        for b in range(batches):
            raw = [EventIn(type="message", id=f"{label}-{b}-{i}",
                           data={"thread_id": f"t-{label}-{b % 10}", "role": "user",
                                 "user_id": "u1", "content": f"message {i}"})
                   for i in range(100)]  # fmt: skip
            await ingest(Batch("bench", actor), raw)
        rates[label] = batches * 100 / (time.perf_counter() - t0)
    events.install(None)
    await client.aclose()
    await database.client.drop_database(settings.mongodb_db_name)
    await database.close()
    return rates


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=TEST_SERVERS, default="nx-27017")
    parser.add_argument("--listeners", type=int, default=100)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    stop_on_sigterm()
    with scratch("chatadmin-rt-") as work:
        mongo = database_server(args.server, work / "db")
        redis = RedisServer(work / "redis")
        try:
            redis.start()
            settings = settings_for(mongo.uri, "bench_realtime", redis_url=redis.url)
            rl = await rate_limit_cost(settings, args.calls)
            r50, r99 = rl["ours_p50_us"] / rl["raw_p50_us"], rl["ours_p99_us"] / rl["raw_p99_us"]
            print(f"rate-limit check: p50 {rl['ours_p50_us']:.0f} us, "
                  f"p99 {rl['ours_p99_us']:.0f} us; raw INCR p50 {rl['raw_p50_us']:.0f} us, "
                  f"p99 {rl['raw_p99_us']:.0f} us; ratio p50 {r50:.2f}x "
                  f"p99 {r99:.2f}x (goal <= 1.5x)", flush=True)  # fmt: skip
            app, headers = start_app(settings, work / "app")
            try:
                fo = await fan_out(app.base, headers, args.listeners, args.messages)
            finally:
                app.stop()
            print(f"fan-out: {fo['listeners']} listeners x {fo['messages']} messages = "
                  f"{fo['deliveries']} deliveries; latency p50 {fo['p50_ms']:.1f} ms, "
                  f"p99 {fo['p99_ms']:.1f} ms (goal p99 <= 50 ms)", flush=True)  # fmt: skip
            ing = await ingest_cost(settings, args.batches)
            on = statistics.mean([ing["on"], ing["on-again"]])
            off = statistics.mean([ing["off"], ing["off-again"]])
            print(f"ingest: {off:.0f} msg/s publishing off, {on:.0f} msg/s on; "
                  f"ratio {on / off:.2f}x (goal >= 0.9x)", flush=True)  # fmt: skip
        finally:
            redis.stop()
            mongo.stop()


if __name__ == "__main__":
    asyncio.run(main())
