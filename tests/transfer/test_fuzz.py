"""Mutated real files (values swapped for others of any type, keys dropped) never raise: each
import ends with a summary, whatever the input became."""

from __future__ import annotations

import json
import random

import pytest

from tests.transfer.conftest import run_import, sample_files

pytestmark = pytest.mark.usefixtures("database")
JUNK = [None, True, 0, -1, 10**30, 1.5e308, "", "x" * 300, "$where", [], {}, [None], {"a": {}},
        "2024-13-45", "\u0000", {"type": "brand_new"},
        [{"role": 5, "content": {"x": 1}}]]  # fmt: skip
FILES = sample_files()


def mutate(value, rng: random.Random, depth: int = 0):
    """The value with one random nested value replaced by junk (or one key dropped)."""
    if isinstance(value, dict) and value and depth < 12:
        key = rng.choice(list(value))
        roll = rng.random()
        if roll < 0.15:
            return {k: v for k, v in value.items() if k != key}
        if roll < 0.4:
            return {**value, key: rng.choice(JUNK)}
        return {**value, key: mutate(value[key], rng, depth + 1)}
    if isinstance(value, list) and value and depth < 12:
        i = rng.randrange(len(value))
        return [*value[:i], mutate(value[i], rng, depth + 1), *value[i + 1 :]]
    return rng.choice(JUNK)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
async def test_mutated_samples_never_raise(path):
    rng = random.Random(path.name)
    text = path.read_text()
    original = [json.loads(x) for x in text.splitlines() if x.strip()] if path.suffix == ".jsonl" \
        else json.loads(text)  # fmt: skip
    if isinstance(original, list):
        original = original[:5]  # a few conversations of the long files are enough
    for n in range(6):
        broken = original
        for _ in range(rng.randint(1, 4)):
            broken = mutate(broken, rng)
        summary = await run_import(json.dumps(broken), org=f"fuzz-{n}", dry_run=n % 2 == 0)
        assert summary.files == 1
        for issue in summary.errors + summary.skipped:
            assert issue.position.startswith("body")
