"""A recount of a thread's rollups from its stored messages, computed here and not by the
product, to check the counters every write keeps in step; then the product's own recount
(`services/rollup.py`, what `manage.py rollup --check` runs) must agree for the whole org."""

from __future__ import annotations

from collections import Counter

from chatadmin.clock import day_start
from chatadmin.models import DailyAnalytics, Message, Thread, User
from chatadmin.services import rollup


async def assert_rollups_match_recount(org_id: str, thread_id: str) -> None:
    """Thread counters, the user's message count and the day buckets equal a recount."""
    stored = await Message.find({"org_id": org_id, "thread_id": thread_id}).to_list()
    live = [m for m in stored if not m.deleted]
    thread = await Thread.find_one({"org_id": org_id, "thread_id": thread_id})
    assert thread is not None
    assert sorted(m.seq for m in stored) == list(range(len(stored))), "seqs have a gap"
    assert thread.next_seq == len(stored)
    assert thread.message_count == len(live)
    meta = [m.ai_metadata for m in live if m.ai_metadata]
    assert thread.total_tokens == sum(a.tokens() for a in meta)
    assert thread.response_count == sum(a.response_ms is not None for a in meta)
    assert thread.total_response_ms == sum(a.response_ms or 0 for a in meta)
    assert thread.error_count == sum(m.has_error for m in live)

    # This thread is the only one of its org with messages in these tests.
    per_day = Counter(day_start(m.created_at) for m in live)
    tokens = Counter()
    for m in live:
        tokens[day_start(m.created_at)] += m.ai_metadata.tokens() if m.ai_metadata else 0
    buckets = await DailyAnalytics.find({"org_id": org_id, "user_id": "*"}).to_list()
    assert {b.period_start: b.messages for b in buckets if b.messages} == dict(per_day)
    assert {b.period_start: b.tokens_total for b in buckets if b.tokens_total} == {
        d: n for d, n in tokens.items() if n
    }
    owner = await User.find_one({"org_id": org_id, "user_id": thread.user_id})
    if owner is not None:
        assert owner.message_count == sum(m.user_id == thread.user_id for m in live)
    checked = await rollup.rebuild(org_id, check=True)
    assert checked.ok, [d.describe() for d in checked.differences[:5]]
