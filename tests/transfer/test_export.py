"""The other export formats: OpenAI and Anthropic lines that our importers read back with the
same messages and tool links, and Markdown in which nothing can run."""

from __future__ import annotations

import json
import re

import pytest

from chatadmin.exceptions import NotFound
from chatadmin.models import Message
from chatadmin.services import messages
from chatadmin.transfer import export, exporter
from tests.factories import make_thread
from tests.transfer.conftest import run_import

pytestmark = pytest.mark.usefixtures("database")

HOSTILE = "<script>alert(1)</script> [click](javascript:alert(1)) <img src=x onerror=alert(1)>"


async def tool_thread(org: str = "org-a") -> None:
    await make_thread(org, "u1", "t1", title="Weather")
    say = messages.append_message
    await say(org, "t1", role="system", content="Be brief.")
    await say(org, "t1", role="user", content="Weather in Paris?")
    await say(org, "t1", role="assistant", content=[
        {"type": "structured_data", "name": "thinking",
         "data": {"type": "thinking", "thinking": "use the tool", "signature": "s"}},
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
    ])  # fmt: skip
    await say(org, "t1", role="tool", content=[
        {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"}])  # fmt: skip
    await say(org, "t1", role="assistant", content="18C and cloudy.")


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
async def test_openai_and_anthropic_exports_import_back_with_their_tool_links(tmp_path, fmt):
    await tool_thread()
    path = tmp_path / f"{fmt}.jsonl"
    done = await export("org-a", path, fmt=fmt)
    assert (done.threads, done.messages) == (1, 5)
    (line,) = path.read_text().splitlines()
    record = json.loads(line)
    assert record["id"] == "t1" and record["title"] == "Weather"
    if fmt == "openai":
        roles = [m["role"] for m in record["messages"]]
        assert roles == ["system", "user", "assistant", "tool", "assistant"]
        call = record["messages"][2]["tool_calls"][0]
        assert call["id"] == "call_1" and json.loads(call["function"]["arguments"]) == {
            "city": "Paris"
        }
        assert record["messages"][3]["tool_call_id"] == "call_1"
    else:
        assert record["system"] == "Be brief."
        assert [m["role"] for m in record["messages"]] == ["user", "assistant", "user", "assistant"]
        assert record["messages"][1]["content"][0] == {
            "type": "thinking", "thinking": "use the tool", "signature": "s"}  # fmt: skip

    summary = await run_import(path, org="org-b")
    assert summary.errors == [] and summary.format == fmt
    copy = await Message.find({"org_id": "org-b"}).sort("seq").to_list()
    uses = [b for m in copy for b in m.content if b.type == "tool_use"]
    results = [b for m in copy for b in m.content if b.type == "tool_result"]
    assert [u.id for u in uses] == [r.tool_use_id for r in results] == ["call_1"]
    assert copy[-1].content[-1].text == "18C and cloudy."
    assert copy[0].thread_id == f"{fmt}:t1"


async def test_markdown_export_escapes_html_fences_and_unsafe_links(tmp_path):
    await make_thread("org-a", "u1", "t1", title=HOSTILE)
    await messages.append_message("org-a", "t1", role="user", content=HOSTILE)
    ticks = "````` five ticks `````"
    await messages.append_message("org-a", "t1", role="assistant", content=[
        {"type": "tool_use", "id": "c1", "name": "run", "input": {"code": ticks}},
        {"type": "image_ref", "url": "javascript:alert(2)", "alt_text": "x](javascript:alert(3))"},
        {"type": "citation", "cited_text": "<iframe src=x>", "url": "javascript:alert(4)"},
    ])  # fmt: skip
    path = tmp_path / "t.md"
    await export("org-a", path, fmt="markdown")
    text = path.read_text()
    assert "<script" not in text and "<img" not in text and "<iframe" not in text
    assert "&lt;script&gt;" in text
    assert not re.search(r"\]\(\s*javascript:", text, re.IGNORECASE)
    fences = re.findall(r"^(`{3,})", text, re.MULTILINE)
    assert fences and all(len(f) > 5 for f in fences)  # longer than the value's run of five


async def test_an_unknown_thread_is_not_found_and_leaves_no_file(tmp_path):
    with pytest.raises(NotFound):
        await export("org-a", tmp_path / "x.jsonl", thread_id="nope")
    assert list(tmp_path.iterdir()) == []


async def test_native_export_reads_ahead_across_pages_and_threads_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(exporter, "PAGE", 3)  # several pages a thread, and the read-ahead fills
    for tid in ("ta", "tb", "tc"):
        await make_thread("org-a", f"u-{tid}", tid)
        for i in range(7):
            await messages.append_message("org-a", tid, role="user", content=f"{tid} {i}")
    await messages.set_feedback("org-a", await first_id("tb"), is_helpful=True)
    path = tmp_path / "all.jsonl"
    done = await export("org-a", path)
    assert (done.threads, done.messages, done.users) == (3, 21, 3)
    events = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    kinds = [(e["type"], e["data"].get("thread_id", e["id"])) for e in events]
    expected = []
    for tid in ("ta", "tb", "tc"):
        expected += [("user", f"u-{tid}"), ("thread", tid)] + [("message", tid)] * 7
        if tid == "tb":
            expected.append(("feedback", await first_id("tb")))
    assert kinds == expected
    texts = [e["data"]["content"] for e in events if e["type"] == "message"]
    assert texts[7:14] == [[{"type": "text", "text": f"tb {i}"}] for i in range(7)]


async def first_id(thread_id: str) -> str:
    doc = await Message.find_one({"org_id": "org-a", "thread_id": thread_id, "seq": 0})
    return doc.message_id


async def test_a_read_that_fails_mid_export_raises_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(exporter, "PAGE", 2)
    for tid in ("ta", "tb"):
        await make_thread("org-a", "u1", tid)
        for i in range(5):
            await messages.append_message("org-a", tid, role="user", content=str(i))
    visible = messages.visible

    def failing(org_id, thread_id):
        if thread_id == "tb":
            raise RuntimeError("the database went away")
        return visible(org_id, thread_id)

    monkeypatch.setattr(exporter.messages_service, "visible", failing)
    with pytest.raises(RuntimeError, match="went away"):
        await export("org-a", tmp_path / "x.jsonl")
    assert list(tmp_path.iterdir()) == []
