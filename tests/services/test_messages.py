"""Messages: atomic per-thread seq, rollups kept in step, analyses linked both ways, feedback."""

import asyncio

import pytest

from chatadmin.exceptions import Conflict, NotFound, TooLarge
from chatadmin.models import Analysis, Execution, Message, Thread
from chatadmin.models.blocks import TextBlock, ToolResultBlock, ToolUseBlock
from chatadmin.services import analytics, messages, threads

pytestmark = pytest.mark.usefixtures("database")


async def _thread(org="org-a", user="u1", **kw) -> Thread:
    return await threads.create_thread(org, user, **kw)


async def test_fifty_concurrent_appends_get_seqs_0_to_49():
    t = await _thread()
    results = await asyncio.gather(
        *[
            messages.append_message(
                "org-a", t.thread_id, role="user", content=f"question {i}",
                ai_metadata={"total_tokens": 10, "response_ms": 100},
            )
            for i in range(50)
        ]
    )  # fmt: skip
    assert sorted(m.seq for m in results) == list(range(50))
    stored = await Message.find({"org_id": "org-a", "thread_id": t.thread_id}).to_list()
    assert sorted(m.seq for m in stored) == list(range(50))
    thread = await threads.get_thread("org-a", t.thread_id)
    assert thread.message_count == 50
    assert thread.next_seq == 50
    assert thread.total_tokens == 500
    assert thread.total_response_ms == 5000 and thread.response_count == 50
    assert thread.last_message_at_ms == max(m.created_at_ms for m in stored)
    assert thread.last_message_at is not None


async def test_concurrent_batches_over_the_same_threads_leave_no_gap_and_store_each_once():
    """Batches spanning several threads reserve in bulk; writers racing on the same threads,
    with some messages sent by two of them, still get gap-free seqs and one copy each."""
    tids = [(await _thread(thread_id=f"t{i}")).thread_id for i in range(6)]

    def batch(writer: int) -> list:
        return [
            messages.build_message("org-a", tids[(writer + k) % 6], message_id=f"w{writer}-{k}",
                                   role="user", content="hi", user_id="u1")
            for k in range(12)
        ]  # fmt: skip

    batches = [batch(w) for w in range(10)]
    batches += [batch(w) for w in (2, 5, 7)]  # resent while the first copies are in flight
    done = await asyncio.gather(*(messages.insert_messages("org-a", b) for b in batches))
    statuses = [r.status for results in done for r in results]
    assert statuses.count("created") == 120 and set(statuses) == {"created", "exists"}
    for tid in tids:
        stored = await Message.find({"org_id": "org-a", "thread_id": tid}).to_list()
        thread = await threads.get_thread("org-a", tid)
        assert sorted(m.seq for m in stored) == list(range(len(stored)))
        assert thread.message_count == thread.next_seq == len(stored) == 20


async def test_a_reservation_on_a_thread_gone_since_it_was_read_leaves_nothing_behind():
    await _thread(thread_id="here")
    msg = messages.build_message("org-a", "gone", role="user", content="x", user_id="u1")
    coll = Thread.get_pymongo_collection()
    ops = [
        messages._reservation("org-a", "here", 0, [msg]),
        messages._reservation("org-a", "gone", 0, [msg]),
    ]
    failed, vanished = await messages._apply_reservations(coll, ops)
    assert (failed, vanished) == (set(), {1})
    assert await coll.count_documents({"org_id": "org-a"}) == 1  # no placeholder left
    assert (await threads.get_thread("org-a", "here")).next_seq == 1


async def test_plain_string_content_is_one_text_block_and_text_is_rendered():
    t = await _thread()
    m = await messages.append_message(
        "org-a",
        t.thread_id,
        role="assistant",
        content=[
            {"type": "text", "text": "Looking it up."},
            {"type": "tool_use", "id": "tu1", "name": "lookup", "input": {"q": "AAPL"}},
        ],
    )
    assert isinstance(m.content[0], TextBlock) and isinstance(m.content[1], ToolUseBlock)
    assert "Looking it up." in m.text and "lookup" in m.text
    u = await messages.append_message("org-a", t.thread_id, role="user", content="hello")
    assert u.content == [TextBlock(text="hello")] and u.text == "hello"
    r = await messages.append_message(
        "org-a", t.thread_id, role="tool",
        content=[{"type": "tool_result", "tool_use_id": "tu1", "content": "no", "is_error": True}],
    )  # fmt: skip
    stored = await messages.get_message("org-a", r.message_id)
    assert isinstance(stored.content[0], ToolResultBlock) and stored.content[0].is_error is True


async def test_append_to_unknown_or_other_org_thread_is_not_found():
    t = await _thread()
    with pytest.raises(NotFound):
        await messages.append_message("org-b", t.thread_id, role="user", content="x")
    with pytest.raises(NotFound):
        await messages.append_message("org-a", "nope", role="user", content="x")
    assert await Message.find({}).count() == 0


async def test_append_to_deleted_thread_is_refused():
    t = await _thread()
    await threads.soft_delete("org-a", t.thread_id)
    with pytest.raises(NotFound):
        await messages.append_message("org-a", t.thread_id, role="user", content="x")


async def test_duplicate_message_id_conflicts_without_touching_counters():
    t = await _thread()
    await messages.append_message("org-a", t.thread_id, message_id="m1", role="user", content="a")
    with pytest.raises(Conflict):
        await messages.append_message(
            "org-a", t.thread_id, message_id="m1", role="user", content=""
        )
    thread = await threads.get_thread("org-a", t.thread_id)
    assert thread.message_count == 1 and thread.next_seq == 1


async def test_oversized_message_is_refused_before_any_write():
    t = await _thread()
    with pytest.raises(TooLarge):
        await messages.append_message(
            "org-a", t.thread_id, role="user", content="x" * 5000, max_bytes=1000
        )
    thread = await threads.get_thread("org-a", t.thread_id)
    assert thread.message_count == 0 and thread.next_seq == 0
    assert await Message.find({}).count() == 0


async def test_assistant_message_with_analysis_links_both_ways():
    t = await _thread()
    msg, analysis, run = await messages.add_assistant_message_with_analysis(
        "org-a",
        t.thread_id,
        content="AAPL volatility is 24%.",
        analysis={
            "title": "AAPL volatility",
            "description": "30-day volatility",
            "result": {"description": "top", "body": [{"key": "AAPL", "value": 24.1}]},
            "parameters": {"lookback_days": 30},
            "mcp_calls": ["calculate_volatility"],
        },
        execution={"question": "vol?", "generated_script": "print(1)"},
    )
    stored_msg = await messages.get_message("org-a", msg.message_id)
    stored_analysis = await Analysis.find_one({"analysis_id": analysis.analysis_id})
    stored_run = await Execution.find_one({"execution_id": run.execution_id})
    assert stored_msg.analysis_id == analysis.analysis_id
    assert stored_msg.analysis.title == "AAPL volatility"
    assert stored_msg.analysis.result.body[0].value == 24.1
    assert stored_analysis.message_id == msg.message_id
    assert stored_analysis.thread_id == t.thread_id
    assert stored_analysis.execution_id == run.execution_id
    assert stored_run.message_id == msg.message_id
    assert stored_msg.execution_id == run.execution_id
    assert stored_msg.execution_status == "pending"
    thread = await threads.get_thread("org-a", t.thread_id)
    assert thread.analysis_ids == [analysis.analysis_id]


async def test_list_messages_pages_in_seq_order():
    t = await _thread()
    for i in range(7):
        await messages.append_message("org-a", t.thread_id, role="user", content=f"m{i}")
    page1 = await messages.list_messages("org-a", t.thread_id, limit=3)
    page2 = await messages.list_messages("org-a", t.thread_id, limit=3, cursor=page1.next_cursor)
    page3 = await messages.list_messages("org-a", t.thread_id, limit=3, cursor=page2.next_cursor)
    seqs = [m.seq for p in (page1, page2, page3) for m in p.items]
    assert seqs == list(range(7))
    assert page3.next_cursor is None
    recent = await messages.recent_messages("org-a", t.thread_id, 2)
    assert [m.seq for m in recent] == [5, 6]


async def test_feedback_replaces_and_analytics_count_the_difference():
    t = await _thread()
    m = await messages.append_message("org-a", t.thread_id, role="assistant", content="ok")
    await messages.set_feedback("org-a", m.message_id, is_helpful=True, rating=5, comment="great")
    await messages.set_feedback("org-a", m.message_id, is_helpful=False, rating=2)
    stored = await messages.get_message("org-a", m.message_id)
    assert stored.feedback.is_helpful is False and stored.feedback.rating == 2
    assert stored.feedback.submitted_at is not None
    day = await analytics.summary("org-a", m.created_at, m.created_at)
    assert day.feedback_count == 1
    assert day.helpful_count == 0 and day.unhelpful_count == 1
    assert day.rating_sum == 2 and day.rating_count == 1 and day.comment_count == 0
    with pytest.raises(NotFound):
        await messages.set_feedback("org-b", m.message_id, is_helpful=True)


async def test_a_new_message_stores_only_the_optional_fields_that_hold_something():
    t = (await _thread()).thread_id
    plain = await messages.append_message("org-a", t, role="user", content="hi", user_id="u1")
    answer = await messages.append_message(
        "org-a", t, role="assistant", content="hello",
        ai_metadata={"model": "m1", "total_tokens": 7}, metadata={"k": "v"},
    )  # fmt: skip
    coll = Message.get_pymongo_collection()
    stored = await coll.find_one({"_id": plain.id})
    kept = set(Message.SPARSE_FIELDS) & set(stored)  # the terms, where the server needs them
    assert kept <= {"search_terms"} and all(stored[k] for k in kept), stored
    assert stored["deleted"] is False and stored["has_error"] is False and stored["seq"] == 0
    full = await coll.find_one({"_id": answer.id})
    assert full["ai_metadata"] == {"model": "m1", "input_tokens": 0, "output_tokens": 0,
                                   "total_tokens": 7}  # fmt: skip
    assert full["metadata"] == {"k": "v"} and "feedback" not in full
    read = await Message.find_one({"_id": plain.id})  # the defaults come back on reading
    assert read.feedback is None and read.references == [] and read.metadata == {}
    page = await messages.list_messages("org-a", t)
    first, second = page.items
    assert (first.ai_metadata, first.metadata, second.ai_metadata.total_tokens) == (None, {}, 7)
    await messages.set_feedback("org-a", plain.message_id, is_helpful=True)
    assert (await coll.find_one({"_id": plain.id}))["feedback"]["is_helpful"] is True


async def test_a_total_left_out_is_the_input_and_output_tokens_everywhere():
    t = await _thread()
    parts = await messages.append_message(
        "org-a", t.thread_id, role="assistant", content="a",
        ai_metadata={"input_tokens": 120, "output_tokens": 30},
    )  # fmt: skip
    given = await messages.append_message(
        "org-a", t.thread_id, role="assistant", content="b",
        ai_metadata={"input_tokens": 120, "output_tokens": 30, "total_tokens": 200},
    )  # fmt: skip
    raw = await Message.get_pymongo_collection().find_one({"_id": parts.id})
    assert raw["ai_metadata"]["total_tokens"] == 150  # stored, not only computed on read
    assert (await Message.get(given.id)).ai_metadata.total_tokens == 200  # a given total stays
    assert (await threads.get_thread("org-a", t.thread_id)).total_tokens == 350
