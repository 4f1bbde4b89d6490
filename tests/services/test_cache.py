"""The result cache: canonical keys, hits counted, expiry, replace keeps hits, org isolation."""

import asyncio
import re

import pytest

from chatadmin.clock import to_ms, utcnow
from chatadmin.exceptions import Invalid
from chatadmin.models import CacheEntry
from chatadmin.services import cache

pytestmark = pytest.mark.usefixtures("database")

Q = "What is the average salary by team?"


# --- keys ---------------------------------------------------------------------------------


def test_key_is_sha256_hex():
    key = cache.cache_key(Q, {"year": 2024})
    assert len(key) == 64 and re.fullmatch(r"[0-9a-f]{64}", key)


@pytest.mark.parametrize(
    "variant",
    [
        Q,
        f"  {Q}  ",
        Q.upper(),
        Q.lower(),
        "What  is the\taverage\n\nsalary   by team?",
        " WHAT is THE average SALARY by team? ",
    ],
)
def test_key_ignores_surrounding_space_case_and_whitespace_runs(variant):
    assert cache.cache_key(variant) == cache.cache_key(Q)
    assert cache.canonical_question(variant) == "what is the average salary by team?"


def test_key_ignores_parameter_order_including_nested_objects():
    a = cache.cache_key(Q, {"year": 2024, "team": "sales", "f": {"x": 1, "y": 2}})
    b = cache.cache_key(Q, {"f": {"y": 2, "x": 1}, "team": "sales", "year": 2024})
    assert a == b


def test_different_parameters_or_questions_give_different_keys():
    base = cache.cache_key(Q, {"year": 2024})
    assert cache.cache_key(Q, {"year": 2025}) != base
    assert cache.cache_key(Q, {"year": "2024"}) != base
    assert cache.cache_key(Q, {"year": 2024, "team": "sales"}) != base
    assert cache.cache_key(Q) != base
    assert cache.cache_key("What is the median salary by team?", {"year": 2024}) != base
    assert cache.cache_key("whatisthe average salary by team?") != cache.cache_key(Q)


def test_no_parameters_and_empty_parameters_are_the_same_key():
    assert cache.cache_key(Q) == cache.cache_key(Q, None) == cache.cache_key(Q, {})


# --- put / lookup -------------------------------------------------------------------------


async def test_lookup_counts_hits_and_records_last_use():
    entry = await cache.put("org-a", Q, {"year": 2024}, {"rows": [1, 2]}, analysis_id="an-1")
    assert entry.hit_count == 0 and entry.last_used_at is None
    assert entry.question == "what is the average salary by team?"
    before = to_ms(utcnow())
    first = await cache.lookup("org-a", Q, {"year": 2024})
    assert first is not None and first.result == {"rows": [1, 2]} and first.analysis_id == "an-1"
    assert first.hit_count == 1 and first.last_used_at_ms >= before
    second = await cache.lookup("org-a", f"  {Q.upper()} ", {"year": 2024})
    assert second.hit_count == 2 and second.last_used_at_ms >= first.last_used_at_ms
    stored = await CacheEntry.find_one({"cache_key": entry.cache_key})
    assert stored.hit_count == 2 and stored.last_used_at is not None


async def test_concurrent_lookups_all_count():
    await cache.put("org-a", Q, None, "answer")
    hits = await asyncio.gather(*[cache.lookup("org-a", Q) for _ in range(10)])
    assert sorted(h.hit_count for h in hits) == list(range(1, 11))


async def test_unknown_question_or_other_parameters_miss():
    await cache.put("org-a", Q, {"year": 2024}, "answer")
    assert await cache.lookup("org-a", "something else") is None
    assert await cache.lookup("org-a", Q, {"year": 2025}) is None
    assert await cache.lookup("org-a", Q) is None


async def test_expired_entries_are_misses_and_not_counted():
    entry = await cache.put("org-a", Q, None, "stale", ttl_seconds=60)
    assert entry.expires_at_ms > to_ms(utcnow())
    await CacheEntry.get_pymongo_collection().update_one(
        {"cache_key": entry.cache_key}, {"$set": {"expires_at_ms": to_ms(utcnow()) - 1}}
    )
    assert await cache.lookup("org-a", Q) is None
    stored = await CacheEntry.find_one({"cache_key": entry.cache_key})
    assert stored.hit_count == 0
    # A new put makes it live again.
    await cache.put("org-a", Q, None, "fresh")
    hit = await cache.lookup("org-a", Q)
    assert hit is not None and hit.result == "fresh"


async def test_put_replaces_the_result_and_keeps_hit_count_and_identity():
    first = await cache.put("org-a", Q, {"p": 1}, "old result", ttl_seconds=60)
    await cache.lookup("org-a", Q, {"p": 1})
    await cache.lookup("org-a", Q, {"p": 1})
    second = await cache.put("org-a", Q.upper(), {"p": 1}, {"new": True}, ttl_seconds=3600)
    assert second.hit_count == 2 and second.id == first.id
    assert second.expires_at_ms > first.expires_at_ms
    stored = await CacheEntry.find({"org_id": "org-a"}).to_list()
    assert len(stored) == 1
    assert stored[0].result == {"new": True} and stored[0].hit_count == 2
    assert stored[0].created_at_ms == first.created_at_ms
    assert (await cache.lookup("org-a", Q, {"p": 1})).hit_count == 3


async def test_default_ttl_is_a_day():
    before = to_ms(utcnow())
    entry = await cache.put("org-a", Q, None, "x")
    assert before + 86_400_000 <= entry.expires_at_ms <= to_ms(utcnow()) + 86_400_000
    assert to_ms(entry.expires_at) == entry.expires_at_ms


@pytest.mark.parametrize("ttl", [0, -1, 365 * 24 * 3600 + 1])
async def test_ttl_out_of_range_is_invalid(ttl):
    with pytest.raises(Invalid):
        await cache.put("org-a", Q, None, "x", ttl_seconds=ttl)
    assert await CacheEntry.find({}).count() == 0


@pytest.mark.parametrize("ttl", [1, 365 * 24 * 3600])
async def test_ttl_bounds_are_accepted(ttl):
    before = to_ms(utcnow())
    entry = await cache.put("org-a", Q, None, "x", ttl_seconds=ttl)
    assert entry.expires_at_ms >= before + ttl * 1000


async def test_entries_are_isolated_per_org():
    await cache.put("org-a", Q, None, "a's answer")
    assert await cache.lookup("org-b", Q) is None
    await cache.put("org-b", Q, None, "b's answer")
    assert (await cache.lookup("org-a", Q)).result == "a's answer"
    assert (await cache.lookup("org-b", Q)).result == "b's answer"
    assert await cache.invalidate("org-b", Q) is True
    assert (await cache.lookup("org-a", Q)).hit_count == 2


async def test_invalidate_removes_only_that_entry():
    await cache.put("org-a", Q, {"p": 1}, "one")
    await cache.put("org-a", Q, {"p": 2}, "two")
    assert await cache.invalidate("org-b", Q, {"p": 1}) is False
    assert await cache.invalidate("org-a", f" {Q.lower()}", {"p": 1}) is True
    assert await cache.lookup("org-a", Q, {"p": 1}) is None
    assert (await cache.lookup("org-a", Q, {"p": 2})).result == "two"
    assert await cache.invalidate("org-a", Q, {"p": 1}) is False
