"""History: a thread's context (recent messages and analyses) and users' question history."""

from datetime import timedelta

import pytest

from chatadmin.clock import utcnow
from chatadmin.exceptions import Invalid, NotFound
from chatadmin.services import analyses, history, messages, threads
from chatadmin.services.pagination import encode_cursor

pytestmark = pytest.mark.usefixtures("database")


async def _thread(org="org-a", user="u1", **kw):
    return await threads.create_thread(org, user, **kw)


async def _say(thread, role="user", text="q", org="org-a", **kw):
    return await messages.append_message(org, thread.thread_id, role=role, content=text, **kw)


# --- session_context ----------------------------------------------------------------------


async def test_session_context_has_thread_last_messages_in_seq_order_and_newest_analyses():
    t = await _thread(title="Payroll questions")
    other = await _thread()
    for i in range(6):
        await _say(t, role="user" if i % 2 == 0 else "assistant", text=f"m{i}")
    await _say(other, text="elsewhere")
    base = utcnow() - timedelta(hours=1)
    for i, minutes in enumerate([5, 30, 15, 45]):
        await analyses.create_analysis(
            "org-a",
            analysis_id=f"an-{i}",
            thread_id=t.thread_id,
            title=f"analysis {i}",
            created_at=base + timedelta(minutes=minutes),
        )
    await analyses.create_analysis("org-a", thread_id=other.thread_id, title="other thread")
    await analyses.create_analysis("org-b", thread_id=t.thread_id, title="other org")

    ctx = await history.session_context("org-a", t.thread_id, messages=4, analyses=3)
    assert ctx["thread"].thread_id == t.thread_id and ctx["thread"].title == "Payroll questions"
    assert [m.seq for m in ctx["recent_messages"]] == [2, 3, 4, 5]
    assert [m.text for m in ctx["recent_messages"]] == ["m2", "m3", "m4", "m5"]
    got = ctx["recent_analyses"]
    assert [a["analysis_id"] for a in got] == ["an-3", "an-1", "an-2"]
    assert [a["title"] for a in got] == ["analysis 3", "analysis 1", "analysis 2"]
    assert got[0]["created_at"] == base + timedelta(minutes=45)


async def test_session_context_defaults_and_short_threads():
    t = await _thread()
    for i in range(12):
        await _say(t, text=f"m{i}")
    ctx = await history.session_context("org-a", t.thread_id)
    assert [m.seq for m in ctx["recent_messages"]] == list(range(2, 12))
    assert ctx["recent_analyses"] == []
    empty = await _thread()
    ctx = await history.session_context("org-a", empty.thread_id, messages=5, analyses=0)
    assert ctx["recent_messages"] == [] and ctx["recent_analyses"] == []


async def test_session_context_is_not_found_for_other_org_or_deleted_thread():
    t = await _thread()
    await _say(t)
    with pytest.raises(NotFound):
        await history.session_context("org-b", t.thread_id)
    await threads.soft_delete("org-a", t.thread_id)
    with pytest.raises(NotFound):
        await history.session_context("org-a", t.thread_id)


# --- question_history ---------------------------------------------------------------------


async def test_question_history_is_only_user_messages_newest_first_per_user():
    base = utcnow() - timedelta(hours=1)
    t1 = await _thread(user="u1")
    t2 = await _thread(user="u1")
    t3 = await _thread(user="u2")
    await _say(t1, text="u1 first", created_at=base)
    await _say(t1, role="assistant", text="answer", created_at=base + timedelta(seconds=1))
    await _say(t1, role="system", text="system", created_at=base + timedelta(seconds=2))
    await _say(t1, role="tool", text="tool", created_at=base + timedelta(seconds=3))
    await _say(t2, text="u1 second", created_at=base + timedelta(seconds=4))
    await _say(t3, text="u2 question", created_at=base + timedelta(seconds=5))
    other_org = await _thread(org="org-b", user="u1")
    await _say(other_org, org="org-b", text="org-b question")

    page = await history.question_history("org-a", user_id="u1")
    assert [m.text for m in page.items] == ["u1 second", "u1 first"]
    assert all(m.role == "user" and m.org_id == "org-a" for m in page.items)
    assert page.next_cursor is None
    u2 = await history.question_history("org-a", user_id="u2")
    assert [m.text for m in u2.items] == ["u2 question"]


async def test_question_history_per_thread():
    base = utcnow() - timedelta(minutes=30)
    t1 = await _thread(user="u1")
    t2 = await _thread(user="u1")
    await _say(t1, text="a", created_at=base)
    await _say(t2, text="b", created_at=base + timedelta(seconds=1))
    await _say(t1, text="c", created_at=base + timedelta(seconds=2))
    await _say(t1, role="assistant", text="answer", created_at=base + timedelta(seconds=3))
    page = await history.question_history("org-a", thread_id=t1.thread_id)
    assert [m.text for m in page.items] == ["c", "a"]
    both = await history.question_history("org-a", user_id="u1", thread_id=t2.thread_id)
    assert [m.text for m in both.items] == ["b"]
    none = await history.question_history("org-a", user_id="u2", thread_id=t1.thread_id)
    assert none.items == []


async def test_question_history_filters_by_query_type():
    t = await _thread()
    await _say(t, text="plain")
    await _say(t, text="compare", query_type="comparative")
    await _say(
        t,
        text="follow up",
        question_context={"original_question": "and them?", "query_type": "contextual"},
    )
    comparative = await history.question_history("org-a", user_id="u1", query_type="comparative")
    assert [m.text for m in comparative.items] == ["compare"]
    # A question's query type also comes from its question_context.
    contextual = await history.question_history("org-a", user_id="u1", query_type="contextual")
    assert [m.text for m in contextual.items] == ["follow up"]
    assert contextual.items[0].query_type == "contextual"
    everything = await history.question_history("org-a", user_id="u1")
    assert len(everything.items) == 3


@pytest.mark.parametrize("query_type", ["Comparative", "weird", "", "$ne"])
async def test_invalid_query_type_is_invalid(query_type):
    with pytest.raises(Invalid):
        await history.question_history("org-a", user_id="u1", query_type=query_type)


async def test_question_history_needs_a_user_or_a_thread():
    with pytest.raises(Invalid):
        await history.question_history("org-a")


@pytest.mark.parametrize(
    "cursor", ["%%%", encode_cursor({"ms": 1}), encode_cursor({"ms": "1", "id": "x"})]
)
async def test_question_history_bad_cursor_is_invalid(cursor):
    with pytest.raises(Invalid):
        await history.question_history("org-a", user_id="u1", cursor=cursor)


async def test_question_history_pages_without_duplicates_or_gaps_including_equal_times():
    t = await _thread()
    same = utcnow() - timedelta(minutes=5)
    texts = []
    for i in range(5):  # five questions in the same millisecond: message_id breaks ties
        await _say(t, text=f"same-{i}", message_id=f"msg-{i}", created_at=same)
        texts.append(f"same-{i}")
    for i in range(3):
        created = same + timedelta(seconds=i + 1)
        await _say(t, text=f"later-{i}", message_id=f"late-{i}", created_at=created)
        texts.append(f"later-{i}")
    await _say(t, role="assistant", text="not a question")

    seen, cursor, sizes = [], None, []
    while True:
        page = await history.question_history("org-a", user_id="u1", limit=3, cursor=cursor)
        seen.extend(m.text for m in page.items)
        sizes.append(len(page.items))
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(sizes) < 20
    assert sizes == [3, 3, 2]
    assert len(seen) == len(set(seen)) == 8 and set(seen) == set(texts)
    assert seen[:3] == ["later-2", "later-1", "later-0"]
    assert seen[3:] == [f"same-{i}" for i in (4, 3, 2, 1, 0)]


async def test_question_history_hides_deleted_messages():
    t = await _thread()
    kept = await _say(t, text="kept")
    gone = await _say(t, text="gone")
    await messages.Message.get_pymongo_collection().update_one(
        {"message_id": gone.message_id}, {"$set": {"deleted": True}}
    )
    page = await history.question_history("org-a", user_id="u1")
    assert [m.message_id for m in page.items] == [kept.message_id]
