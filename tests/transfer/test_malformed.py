"""Input that is broken, the wrong shape or refused by a write rule: a clear error naming the
file and the position, never an exception, and nothing half-written for the conversation that
failed, while the good ones are imported. Also: dry runs, and big conversations in chunks."""

from __future__ import annotations

import gzip
import json

import pytest

from chatadmin.models import Message, Thread
from chatadmin.services import threads
from tests.factories import make_thread
from tests.transfer.conftest import run_import, snapshot

pytestmark = pytest.mark.usefixtures("database")


def chatgpt(cid: str, *texts: str, meta: dict | None = None) -> dict:
    """A small ChatGPT conversation, one linear branch."""
    mapping, parent = {}, None
    for n, text in enumerate(texts):
        nid = f"{cid}-n{n}"
        role = "user" if n % 2 == 0 else "assistant"
        content = {"content_type": "text", "parts": [text]}
        msg = {"id": nid, "author": {"role": role}, "create_time": 1700000000 + n,
               "content": content, "metadata": meta or {}}  # fmt: skip
        mapping[nid] = {"id": nid, "parent": parent, "children": [], "message": msg}
        if parent:
            mapping[parent]["children"].append(nid)
        parent = nid
    return {"id": cid, "title": cid, "mapping": mapping, "current_node": parent}


def native(*records: tuple) -> str:
    header = json.dumps({"chatadmin": "native", "version": 1})
    return "\n".join(
        [header] + [json.dumps({"type": t, "id": i, "data": d}) for t, i, d in records]
    )


async def thread_ids(org: str = "org-a") -> set[str]:
    return {t.thread_id for t in await Thread.find({"org_id": org}).to_list()}


async def test_truncated_json_imports_what_came_before_and_names_where_it_broke():
    text = json.dumps([chatgpt("c1", "a", "b"), chatgpt("c2", "c", "d"), chatgpt("c3", "e")])
    summary = await run_import(text[: len(text) - 40])
    assert await thread_ids() == {"chatgpt:c1", "chatgpt:c2"}
    (error,) = summary.errors
    assert error.position == "body: conversation index 2" and "malformed JSON" in error.message
    assert await Message.find({"thread_id": "chatgpt:c3"}).count() == 0


async def test_a_bad_conversation_in_the_middle_writes_nothing_and_the_others_are_imported():
    convs = [chatgpt("c1", "a", "b"), chatgpt("c2", "c", "d", meta={"\ue001x": 1}),
             chatgpt("c3", "e", "f")]  # fmt: skip
    summary = await run_import(json.dumps(convs))
    (error,) = summary.errors
    assert error.position == "body: conversation index 1 (thread chatgpt:c2)"
    assert "not imported: message c2-n0: invalid message event" in error.message
    assert "U+E001" in error.message
    assert await thread_ids() == {"chatgpt:c1", "chatgpt:c3"}
    assert await Message.find({"thread_id": "chatgpt:c2"}).count() == 0
    assert summary.messages["created"] == 4


async def test_native_thread_with_one_bad_line_is_not_written_at_all():
    text = native(
        ("thread", "t1", {"user_id": "u1", "title": "one"}),
        ("message", "m1", {"thread_id": "t1", "role": "user", "content": "hi"}),
        ("thread", "t2", {"user_id": "u1", "title": "two"}),
        ("message", "m2", {"thread_id": "t2", "role": "user", "content": "ok"}),
        ("message", "m3", {"thread_id": "t2", "role": "wizard", "content": "bad"}),
        ("thread", "t3", {"user_id": "u1", "title": "three"}),
        ("message", "m4", {"thread_id": "t3", "role": "assistant", "content": "fine"}),
    )
    summary = await run_import(text)
    (error,) = summary.errors
    assert (
        error.position == "body: line 4 (thread t2)" and "line 6: invalid message" in error.message
    )
    assert await thread_ids() == {"t1", "t3"}
    assert await Message.find({"thread_id": "t2"}).count() == 0


async def test_integers_past_64_bits_are_refused_with_their_conversation():
    good = {"id": "a", "messages": [{"role": "user", "content": "hi"}]}
    bad = {"id": "b", "messages": [{"role": "user", "content": "hi"}], "n": 2**70}
    summary = await run_import("\n".join(json.dumps(r) for r in (good, bad)))
    assert summary.errors[0].position == "body: line 2 (thread openai:b)"
    assert "cannot be stored" in summary.errors[0].message
    assert await thread_ids() == {"openai:a"}


async def test_a_malformed_jsonl_line_is_an_error_for_that_line_only():
    good = {"id": "a", "messages": [{"role": "user", "content": "hi"}]}
    text = "\n".join(
        [json.dumps(good), '{"id": "b", "messages": [', json.dumps({**good, "id": "c"})]
    )
    summary = await run_import(text)
    (error,) = summary.errors
    assert error.position == "body: line 2" and "malformed JSON" in error.message
    assert await thread_ids() == {"openai:a", "openai:c"}


async def test_a_broken_line_inside_a_native_thread_fails_that_thread():
    message = {"thread_id": "t1", "role": "user", "content": "x"}
    lines = native(("thread", "t1", {"user_id": "u1"}), ("message", "m1", message)).split("\n")
    summary = await run_import("\n".join([*lines[:2], "{not json", lines[2]]))
    assert len(summary.errors) == 1 and "line 3" in summary.errors[0].message
    assert await thread_ids() == set()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "the file is empty"),
        (b"   \n ", "the file is empty"),
        (b"hello", "not JSON"),
        (b'"just a string"', "not JSON"),
        (b'{"foo": 1}', "cannot recognise the format"),
        (b"[1, 2, 3]", "cannot recognise the format"),
        (b"{" * 5000, "malformed JSON"),
        (b"\x1f\x8b\x08\x00garbage", "cannot read"),
        (gzip.compress(b"[" * 200 + b"]" * 200, mtime=0), "nested deeper"),  # mtime 0: same ids
    ],
)
async def test_unreadable_or_unknown_input_is_one_clear_error(body, needle):
    summary = await run_import(body)
    assert summary.errors and needle in str(summary.errors[0]), summary.errors
    assert summary.errors[0].position.startswith("body")
    assert await thread_ids() == set()


async def test_the_wrong_format_named_fails_every_conversation_and_writes_nothing():
    summary = await run_import(
        json.dumps([chatgpt("c1", "a"), chatgpt("c2", "b")]), format="claude"
    )
    assert [e.position for e in summary.errors] == ["body: conversation index 0",
                                                    "body: conversation index 1"]  # fmt: skip
    assert "chat_messages" in summary.errors[0].message
    assert await thread_ids() == set()


async def test_a_message_over_the_size_limit_refuses_its_whole_conversation():
    convs = [chatgpt("c1", "short", "x" * 5000), chatgpt("c2", "fine")]
    summary = await run_import(json.dumps(convs), max_message_bytes=2000)
    assert "the limit is 2000" in summary.errors[0].message
    assert await thread_ids() == {"chatgpt:c2"}


async def test_conflicts_only_the_database_knows_are_found_before_writing():
    await make_thread("org-a", "u1", "chatgpt:gone")
    await threads.soft_delete("org-a", "chatgpt:gone")
    message = {"thread_id": "t9", "role": "user", "content": "x"}
    text = native(("thread", "t9", {"user_id": "u1"}), ("message", "m1", message))
    await run_import(text)
    moved = text.replace('"t9"', '"t8"')  # the same message id, now in another thread
    summary = await run_import(json.dumps([chatgpt("gone", "a")]))
    assert "is deleted" in summary.errors[0].message
    summary = await run_import(moved)
    assert "already belongs to thread 't9'" in summary.errors[0].message
    assert await thread_ids() == {"chatgpt:gone", "t9"}


async def test_a_big_conversation_is_written_in_chunks_and_validated_before_the_first():
    texts = [f"message {n}" for n in range(35)]
    summary = await run_import(json.dumps(chatgpt("big", *texts)), max_batch=10)
    assert summary.errors == [] and summary.messages["created"] == 35
    thread = await Thread.find_one({"thread_id": "chatgpt:big"})
    stored = await Message.find({"thread_id": "chatgpt:big"}).sort("seq").to_list()
    assert thread.message_count == 35 and [m.seq for m in stored] == list(range(35))
    assert [m.content[0].text for m in stored] == texts

    bad = chatgpt("big2", *texts)
    bad["mapping"]["big2-n30"]["message"]["metadata"] = {"\ue002": 1}
    summary = await run_import(json.dumps(bad), max_batch=10)
    assert summary.errors and await Message.find({"thread_id": "chatgpt:big2"}).count() == 0


async def test_dry_run_validates_and_writes_nothing():
    before = await snapshot()
    convs = [chatgpt("c1", "a", "b"), chatgpt("c2", "c", meta={"\ue003": 1})]
    summary = await run_import(json.dumps(convs), dry_run=True)
    assert summary.dry_run and summary.messages["valid"] == 2 and summary.threads["valid"] == 1
    assert len(summary.errors) == 1
    assert "would import 1 of 2" in summary.lines()[1]
    assert await snapshot() == before


async def test_conversations_written_together_are_still_checked_against_each_other():
    """Small conversations are written in one batch; one that reuses a message id of a
    conversation waiting in that batch is checked as against a stored one."""
    message = {"thread_id": "t9", "role": "user", "content": "x"}
    first = native(("thread", "t9", {"user_id": "u1"}), ("message", "m1", message))
    moved = first.replace('"t9"', '"t8"').split("\n", 1)[1]  # without a second header
    summary = await run_import(first + "\n" + moved)
    assert summary.imported == 1 and len(summary.errors) == 1, summary.errors
    assert "already belongs to thread 't9'" in summary.errors[0].message
    assert await thread_ids() == {"t9"}


async def test_many_small_conversations_share_their_batches(monkeypatch):
    from chatadmin.transfer import importer

    batches = []
    real = importer.ingest

    async def counted(batch, events):
        batches.append(len(events))
        return await real(batch, events)

    monkeypatch.setattr(importer, "ingest", counted)
    convs = [chatgpt(f"c{n}", "question", "answer") for n in range(30)]
    summary = await run_import(json.dumps(convs), max_batch=25)
    assert summary.errors == [] and summary.imported == 30
    assert summary.messages["created"] == 60 and summary.threads["created"] == 30
    # The first conversation's owner is new: it goes alone; then eight to a batch.
    assert max(batches) <= 25 and len(batches) < 10, batches
    assert len(await thread_ids()) == 30
