"""Synthetic conversation text from a fixed seed: words, sentences, AI metadata, tool calls.

Every benchmark draws its texts from here, so their data looks alike and one change of the
vocabulary reaches them all. Each function takes the caller's `random.Random`, so a seed gives
the same data run after run.
"""

from __future__ import annotations

import json
import random

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
TOOLS = [
    ("get_price_history", lambda r, t: {"ticker": t, "lookback_days": r.choice([7, 30, 90, 365])}),
    ("compute_volatility", lambda r, t: {"ticker": t, "window": r.choice([20, 60]), "annual": 1}),
    ("run_sql", lambda r, t: {"query": f"select * from prices where ticker = '{t}' limit 100"}),
    ("search_filings", lambda r, t: {"ticker": t, "form": r.choice(["10-K", "10-Q"]), "k": 5}),
]
MODELS = ["claude-sonnet-4", "claude-haiku-4", "gpt-4.1-mini"]


def sentence(rng: random.Random, low: int = 6, high: int = 18) -> str:
    """`low` to `high` words, a ticker in half of them, capitalised and ended."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    if rng.random() < 0.5:
        words.insert(rng.randrange(len(words)), rng.choice(TICKERS))
    return " ".join(words).capitalize() + rng.choice([".", "?", "."])


def text(rng: random.Random, low: int, high: int) -> str:
    """`low` to `high` sentences."""
    return " ".join(sentence(rng) for _ in range(rng.randint(low, high)))


def ai_metadata(rng: random.Random, low: int, high: int) -> dict:
    """An assistant message's AI metadata with `low` to `high` input tokens."""
    inp, out = rng.randint(low, high), rng.randint(low // 10, high // 4)
    return {
        "model": rng.choice(MODELS),
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": inp + out,
        "response_ms": rng.randint(300, 6000),
        "temperature": 0.2,
    }


def tool_use(rng: random.Random, tool_id: str, ticker: str) -> dict:
    """A `tool_use` block calling one of TOOLS about `ticker`."""
    name, make_input = rng.choice(TOOLS)
    return {"type": "tool_use", "id": tool_id, "name": name, "input": make_input(rng, ticker)}


def price_rows(rng: random.Random, ticker: str, most: int) -> str:
    """A tool's JSON answer: 5 to `most` rows of prices."""
    rows = [[d, round(rng.uniform(50, 500), 2)] for d in range(rng.randint(5, most))]
    return json.dumps({"ticker": ticker, "rows": rows})


def vocabulary(size: int, rng: random.Random, exclude: set[str] = frozenset()) -> list[str]:
    """`size` random lowercase words of 3 to 10 letters (sorted), less those in `exclude`."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 10))))
    return sorted(words - set(exclude))
