"""Realistic demo data: orgs, users, threads with text/tool_use/tool_result blocks, analyses,
executions, feedback and audit entries. Ids are deterministic, so seeding twice adds nothing.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from chatadmin.clock import utcnow
from chatadmin.exceptions import Conflict
from chatadmin.models import Thread
from chatadmin.services import audit, executions, messages, threads, users

SEED = 20261123
ORGS = ["acme", "globex", "initech"]
USERS_PER_ORG = 4
ROLES = ["owner", "leader", "manager", "manager"]
FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Ken",
    "Margaret",
    "Linus",
    "Radia",
    "Donald",
    "Frances",
    "John",
]
TICKERS = ["AAPL", "NVDA", "MSFT", "TSLA", "AMZN", "GOOG", "META", "JPM"]
TOPICS = [
    ("volatility", "What was the {days}-day volatility of {t}?", "calculate_volatility"),
    (
        "returns",
        "How did {t} perform over the last {days} days compared with the S&P 500?",
        "compare_returns",
    ),
    ("drawdown", "What is the maximum drawdown of {t} in the past {days} days?", "max_drawdown"),
    ("correlation", "How correlated are {t} and {u} over {days} days?", "correlation"),
]
SOURCES = ["web", "slack", "whatsapp", "api"]


@dataclass
class SeedStats:
    threads_created: int = 0
    threads_skipped: int = 0
    messages: int = 0
    analyses: int = 0
    executions: int = 0
    seconds: float = 0.0

    @property
    def threads_per_second(self) -> float:
        return self.threads_created / self.seconds if self.seconds else 0.0

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def _user(org_index: int, n: int) -> dict:
    name = FIRST[(org_index * USERS_PER_ORG + n) % len(FIRST)]
    org = ORGS[org_index]
    return {
        "user_id": f"{org}-user-{n + 1}",
        "email": f"{name.lower()}.{n + 1}@{org}.example",
        "username": f"{name.lower()}{n + 1}",
        "display_name": f"{name} {org.title()}",
        "role": ROLES[n % len(ROLES)],
        "preferences": {"timezone": "UTC", "theme": random.choice(["light", "dark"])},
        "metadata": {"plan": random.choice(["free", "team", "enterprise"])},
    }


async def _seed_users() -> None:
    for oi, org in enumerate(ORGS):
        for n in range(USERS_PER_ORG):
            fields = _user(oi, n)
            await users.upsert_user(org, fields.pop("user_id"), **fields)


def _assistant_reply(rng: random.Random, ticker: str, topic: str, days: int, failed: bool) -> list:
    if failed:
        return [
            {"type": "text", "text": f"I couldn't fetch market data for {ticker}; please retry."}
        ]
    value = round(rng.uniform(8, 65), 2)
    trend = "above" if value > 30 else "below"
    return [
        {
            "type": "text",
            "text": f"The {days}-day {topic} of {ticker} is **{value}%**.\n"
            f"That is {trend} its one-year average.",
        },
        {
            "type": "structured_data",
            "name": f"{topic} summary",
            "columns": ["metric", "value"],
            "data": {"rows": [[topic, value], ["lookback_days", days]]},
        },
        {
            "type": "citation",
            "cited_text": f"{ticker} daily closes",
            "title": "Market data feed",
            "url": f"https://data.example/{ticker.lower()}",
        },
    ]


def _ai(rng: random.Random, low: int, high: int) -> dict:
    return {
        "model": "claude-sonnet-4",
        "input_tokens": rng.randint(low, high),
        "output_tokens": rng.randint(low // 10, high // 8),
        "response_ms": rng.randint(400, 4000),
        "temperature": 0.2,
        "confidence": round(rng.uniform(0.5, 0.95), 2),
    }


async def _seed_turn(
    org: str, thread_id: str, user_id: str, turn: int, q: str, rng: random.Random, ctx: dict
) -> None:
    """One question, a tool call and its result, and an answer with its analysis and execution."""
    ticker, topic, tool, days = ctx["ticker"], ctx["topic"], ctx["tool"], ctx["days"]

    def at(step: str) -> datetime:
        """The message's time: turns a few minutes apart, steps seconds apart."""
        return ctx["start"] + timedelta(minutes=3 * turn, seconds=15 * "qtra".index(step))

    question_context = {
        "original_question": q,
        "expanded_question": f"{q} ({ticker}, {days} days)",
        "expansion_confidence": round(rng.uniform(0.6, 0.99), 2),
        "query_type": "complete" if turn == 0 else "contextual",
    }
    await messages.append_message(
        org,
        thread_id,
        message_id=f"{thread_id}-q{turn}",
        created_at=at("q"),
        role="user",
        user_id=user_id,
        content=q,
        question_context=question_context,
    )
    tool_id = f"toolu_{thread_id[-5:]}_{turn}"
    tool_input = {"ticker": ticker, "lookback_days": days, "benchmark": "SPX"}
    await messages.append_message(
        org,
        thread_id,
        message_id=f"{thread_id}-t{turn}",
        created_at=at("t"),
        role="assistant",
        user_id=user_id,
        content=[
            {"type": "text", "text": f"I'll compute the {topic} of {ticker} over {days} days."},
            {"type": "tool_use", "id": tool_id, "name": tool, "input": tool_input},
        ],
        ai_metadata=_ai(rng, 300, 1500),
    )
    failed = rng.random() < 0.12
    result = "upstream market data timed out" if failed else f'{{"ticker": "{ticker}", "ok": true}}'
    await messages.append_message(
        org,
        thread_id,
        message_id=f"{thread_id}-r{turn}",
        created_at=at("r"),
        role="tool",
        user_id=user_id,
        content=[
            {"type": "tool_result", "tool_use_id": tool_id, "is_error": failed, "content": result}
        ],
    )
    reply = _assistant_reply(rng, ticker, topic, days, failed)
    value = reply[1]["data"]["rows"][0][1] if not failed else None
    script = f"result = {tool}({ticker!r}, {days})"
    analysis = {
        "analysis_id": f"{thread_id}-an{turn}",
        "title": f"{ticker} {days}-day {topic}",
        "description": f"{topic.title()} of {ticker} over {days} days",
        "question": q,
        "category": "technical_analysis",
        "is_template": turn == 0,
        "result": {
            "description": f"{topic.title()} for {ticker}",
            "body": [
                {"key": topic, "value": value, "description": f"{days}-day window"},
                {"key": "ticker", "value": ticker, "description": None},
            ],
        },
        "parameters": {"ticker": ticker, "lookback_days": days},
        "mcp_calls": [tool],
        "generated_script": script,
        "data_sources": ["market_data"],
        "tags": [topic, ticker.lower()],
    }
    execution = {
        "question": q,
        "generated_script": script,
        "mcp_calls": [tool],
        "parameters": analysis["parameters"],
    }
    error = {"code": "upstream_timeout", "message": "market data timed out"} if failed else None
    msg, _analysis, run = await messages.add_assistant_message_with_analysis(
        org,
        thread_id,
        user_id=user_id,
        message_id=f"{thread_id}-a{turn}",
        created_at=at("a"),
        content=reply,
        analysis=analysis,
        execution=execution,
        status="error" if failed else "sent",
        error=error,
        ai_metadata={**_ai(rng, 800, 3000), "sources": ["market_data"]},
    )
    await executions.transition(org, run.execution_id, "running")
    if failed:
        await executions.transition(
            org, run.execution_id, "failed", error="TimeoutError: market data feed"
        )
    else:
        await executions.transition(
            org,
            run.execution_id,
            "success",
            result={"value": value},
            memory_used_mb=round(rng.uniform(20, 120), 1),
        )
    if rng.random() < 0.5:
        await messages.set_feedback(
            org,
            msg.message_id,
            is_helpful=not failed and rng.random() < 0.85,
            rating=rng.randint(1, 2) if failed else rng.randint(3, 5),
            comment=rng.choice([None, "Great, thanks", "Too slow", "Exactly what I needed"]),
        )


async def _seed_thread(i: int, rng: random.Random, stats: SeedStats) -> None:
    org = ORGS[i % len(ORGS)]
    user_id = f"{org}-user-{rng.randrange(USERS_PER_ORG) + 1}"
    thread_id = f"seed-thread-{i:05d}"
    ticker, other = rng.sample(TICKERS, 2)
    topic, question_tpl, tool = TOPICS[i % len(TOPICS)]
    start = utcnow() - timedelta(days=rng.randrange(30), hours=rng.randrange(24))
    ctx = {
        "ticker": ticker,
        "topic": topic,
        "tool": tool,
        "days": rng.choice([7, 30, 90]),
        "start": start,
    }
    turns = rng.randint(1, 3)
    if await Thread.find_one({"org_id": org, "thread_id": thread_id}) is not None:
        stats.threads_skipped += 1
        return
    title = f"{ticker} {topic}"
    await threads.create_thread(
        org,
        user_id,
        thread_id=thread_id,
        title=title,
        type="analysis",
        created_at=start,
        description=f"{topic.title()} analysis of {ticker}",
        tags=[topic, ticker.lower()],
        initial_source=rng.choice(SOURCES),
    )
    await audit.record(
        audit.Actor("user", user_id, via="seed"),
        "thread_created",
        audit.Resource(Thread.RESOURCE, thread_id, org),
        after={"title": title},
    )
    followups = [f"And for {other}?", "Can you show that weekly instead?", "Use twice the window."]
    for turn in range(turns):
        q = (
            question_tpl.format(t=ticker, u=other, days=ctx["days"])
            if turn == 0
            else followups[turn]
        )
        await _seed_turn(org, thread_id, user_id, turn, q, rng, ctx)
        stats.messages += 4
        stats.analyses += 1
        stats.executions += 1
    stats.threads_created += 1


async def seed(
    threads_count: int = 50,
    progress: Callable[[int], None] | None = None,
    concurrency: int = 4,
) -> SeedStats:
    """Create demo data for `threads_count` threads spread over the demo orgs.

    Each thread draws from its own seeded generator, so the data is the same on every run and
    whatever the concurrency.
    """
    stats = SeedStats()
    start = time.perf_counter()
    await _seed_users()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(i: int) -> None:
        async with gate:
            try:
                await _seed_thread(i, random.Random(SEED + i), stats)
            except Conflict:
                stats.threads_skipped += 1
            if progress:
                progress(1)

    await asyncio.gather(*(one(i) for i in range(threads_count)))
    stats.seconds = time.perf_counter() - start
    return stats
