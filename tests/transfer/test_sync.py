"""Seed 003's folder of JSON conversations: imported once, then only what is new or changed,
remembered in a state file; a failed file is tried again; two runs cannot share a state."""

from __future__ import annotations

import json
import os

import pytest

from chatadmin.models import Message, Thread
from chatadmin.transfer import Options, SyncBusy, sync_folder
from chatadmin.transfer.sync import locked

pytestmark = pytest.mark.usefixtures("database")


def conversation(cid: str, *texts: str, user: str = "user-7") -> dict:
    """A conversation file as seed 003's JSON store writes it."""
    return {
        "conversation_id": cid,
        "user_id": user,
        "created_at": "2024-05-01T10:00:00Z",
        "updated_at": "2024-05-01T10:05:00Z",
        "context": {"project": "normo"},
        "messages": [
            {
                "role": "user" if n % 2 == 0 else "assistant",
                "content": text,
                "timestamp": f"2024-05-01T10:0{n}:00Z",
                "agent_steps": ["search", "answer"] if n % 2 else [],
                "pdf_names": ["zoning.pdf"] if n % 2 else [],
                "source_citations": [{"text": "quoted", "title": "Zoning", "page": 4}]
                if n % 2
                else [],
                "meta_data": {"latency_ms": 12} if n % 2 else {},
            }
            for n, text in enumerate(texts)
        ],
    }


def write(folder, name: str, conv: dict) -> None:
    (folder / name).write_text(json.dumps(conv))


async def test_seed_003_files_map_to_threads_messages_blocks_and_references(tmp_path):
    write(tmp_path, "c1.json", conversation("c1", "What is the zoning?", "It is R2."))
    result = await sync_folder(tmp_path, Options(org_id="org-a", format="folder"), tmp_path / "s")
    assert result.imported == ["c1.json"] and result.summary.errors == []
    thread = await Thread.find_one({"thread_id": "folder:c1"})
    assert thread.user_id == "user-7" and thread.title == "What is the zoning?"
    assert thread.metadata["source"]["conversation"]["context"] == {"project": "normo"}
    _question, answer = await Message.find({"thread_id": "folder:c1"}).sort("seq").to_list()
    assert [b.type for b in answer.content] == ["text", "structured_data", "citation"]
    assert answer.content[1].data == ["search", "answer"]
    assert (answer.content[2].cited_text, answer.content[2].location) == ("quoted", {"page": 4})
    assert answer.references[0].kind == "pdf" and answer.references[0].ref_id == "zoning.pdf"
    assert answer.metadata["meta_data"] == {"latency_ms": 12}
    assert answer.created_at.isoformat() == "2024-05-01T10:01:00+00:00"


async def test_sync_twice_imports_once_then_picks_up_a_changed_file(tmp_path):
    folder, state = tmp_path / "convs", tmp_path / "state" / "sync.json"
    folder.mkdir()
    write(folder, "a.json", conversation("a", "one", "two"))
    write(folder, "b.json", conversation("b", "three"))
    options = Options(org_id="org-a", format="folder")

    first = await sync_folder(folder, options, state)
    assert (first.seen, sorted(first.imported), first.unchanged) == (2, ["a.json", "b.json"], 0)
    assert first.summary.messages["created"] == 3
    saved = json.loads(state.read_text())
    assert set(saved["files"]) == {"a.json", "b.json"} and saved["org_id"] == "org-a"

    second = await sync_folder(folder, options, state)
    assert (second.imported, second.unchanged) == ([], 2)
    assert second.summary.files == 0  # nothing was even read

    write(folder, "a.json", conversation("a", "one", "two", "four"))  # a message appended
    stat = (folder / "b.json").stat()
    os.utime(folder / "b.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched only
    third = await sync_folder(folder, options, state)
    assert third.imported == ["a.json"] and third.unchanged == 1
    assert third.summary.messages["created"] == 1 and third.summary.messages["unchanged"] == 2
    stored = await Message.find({"thread_id": "folder:a"}).sort("seq").to_list()
    assert [m.content[0].text for m in stored] == ["one", "two", "four"]
    assert (await Thread.find_one({"thread_id": "folder:a"})).message_count == 3


async def test_a_file_that_fails_is_reported_and_tried_again(tmp_path):
    state = tmp_path / "state.json"
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "bad.json").write_text('{"conversation_id": "x", "messages": [')
    write(folder, "good.json", conversation("g", "hi"))
    options = Options(org_id="org-a", format="folder")
    first = await sync_folder(folder, options, state)
    assert first.failed == ["bad.json"] and first.imported == ["good.json"]
    assert "bad.json" in str(first.summary.errors[0])
    write(folder, "bad.json", conversation("x", "fixed"))
    second = await sync_folder(folder, options, state)
    assert second.imported == ["bad.json"] and second.failed == []
    assert await Thread.find_one({"thread_id": "folder:x"}) is not None


async def test_dry_run_remembers_nothing_and_two_runs_cannot_share_a_state(tmp_path):
    write(tmp_path, "a.json", conversation("a", "hi"))
    state = tmp_path / "state" / "s.json"
    dry = await sync_folder(tmp_path, Options(org_id="org-a", format="folder", dry_run=True), state)
    assert dry.imported == ["a.json"] and not state.exists()
    assert await Thread.find_one({"thread_id": "folder:a"}) is None
    with locked(state), pytest.raises(SyncBusy):
        await sync_folder(tmp_path, Options(org_id="org-a", format="folder"), state)
