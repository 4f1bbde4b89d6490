"""Every third-party sample file imports without an error, with the counts the file itself
shows (threads, messages, the main branch, tool calls linked to their results), and a second
import of it changes nothing."""

from __future__ import annotations

import gzip
import json

import pytest

from chatadmin.models import Message, Thread
from tests.transfer.conftest import run_import, sample_files, snapshot

pytestmark = pytest.mark.usefixtures("database")

# file: (format, threads, messages, on the main branch, skipped, tool_use ids with a result)
EXPECTED = {
    "anthropic-sdk-python__092be1de.json": ("anthropic", 1, 4, 4, 0, 1),
    "anthropic-sdk-python__10e53c1d.json": ("anthropic", 1, 4, 4, 0, 1),
    "anthropic-sdk-python__32da0815.json": ("anthropic", 1, 2, 2, 0, 1),
    "anthropic-sdk-python__555fb399.json": ("anthropic", 1, 4, 4, 0, 1),
    "anthropic-sdk-python__e075a6c2.json": ("anthropic", 1, 4, 4, 0, 1),
    "claude-code-action__sample-turns.json": ("anthropic", 1, 7, 7, 0, 3),
    "librechat__chatgpt-citations.json": ("chatgpt", 1, 2, 2, 0, 0),
    "librechat__chatgpt-export.json": ("chatgpt", 2, 21, 21, 0, 4),
    "librechat__chatgpt-modern-export.json": ("chatgpt", 2, 7, 7, 1, 0),
    "librechat__chatgpt-tree.json": ("chatgpt", 1, 12, 7, 0, 0),
    "openwebui-importer__gpt_example.json": ("chatgpt", 1, 12, 12, 0, 0),
    "polylogue__native-conversation-v1.json": ("chatgpt", 1, 8, 7, 0, 1),
    "openwebui-importer__claude_example.json": ("claude", 83, 557, 557, 2, 0),
    "openwebui-importer__claude_thinking_example.json": ("claude", 1, 2, 2, 0, 0),
    "osteele__claude-bakery-chat.json": ("claude", 1, 4, 4, 0, 0),
    "librechat__chatbotui-export.json": ("librechat", 2, 8, 8, 0, 0),
    "librechat__librechat-export.json": ("librechat", 1, 6, 6, 0, 0),
    "librechat__librechat-linear.json": ("librechat", 1, 2, 2, 0, 0),
    "librechat__librechat-opts-nonr-branches.json": ("librechat", 1, 5, 2, 0, 0),
    "librechat__librechat-tree.json": ("librechat", 1, 9, 4, 0, 0),
    "ai-blaise__full.jsonl": ("openai", 1, 5, 5, 0, 1),
    "ai-blaise__tool_calls_variations.jsonl": ("openai", 3, 11, 11, 0, 1),
    "ai-blaise__tool_structure_variations.jsonl": ("openai", 4, 8, 8, 0, 0),
    "openai-cookbook__drone_training.first3.jsonl": ("openai", 3, 9, 9, 0, 0),
    "librechat__openwebui-export.json": ("openwebui", 3, 6, 6, 0, 1),
    "openwebui-importer__expected_chatgpt_output.json": ("openwebui", 1, 10, 10, 0, 0),
    "openwebui-importer__webui-json.json": ("openwebui", 1, 2, 2, 0, 0),
}
FILES = sample_files()


def test_every_sample_file_has_its_expectation():
    if not FILES:
        pytest.skip("sample files not found")
    assert {p.name for p in FILES} == set(EXPECTED)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
async def test_a_sample_file_imports_with_its_counts_and_again_changes_nothing(path):
    fmt, threads, messages, main, skipped, linked = EXPECTED[path.name]
    first = await run_import(path)
    assert first.errors == []
    assert (first.format, first.detected) == (fmt, True)
    counts = (first.threads, first.messages, first.users)
    assert first.threads["created"] == threads, counts
    assert first.messages["created"] == messages, counts
    assert len(first.skipped) == skipped

    stored = await Message.find({"org_id": "org-a"}).to_list()
    assert len(stored) == messages
    on_main = [m for m in stored if m.metadata["source"].get("main_branch") is not False]
    assert len(on_main) == main
    uses = {b.id for m in stored for b in m.content if b.type == "tool_use"}
    results = {b.tool_use_id for m in stored for b in m.content if b.type == "tool_result"}
    assert len(uses & results) == linked
    for thread in await Thread.find({"org_id": "org-a"}).to_list():
        seqs = sorted(m.seq for m in stored if m.thread_id == thread.thread_id)
        assert seqs == list(range(thread.message_count)) and thread.next_seq == len(seqs)
        # the main branch comes first, in order
        own = sorted((m for m in stored if m.thread_id == thread.thread_id), key=lambda m: m.seq)
        flags = [m.metadata["source"].get("main_branch") is not False for m in own]
        assert flags == sorted(flags, reverse=True)

    before = await snapshot()
    again = await run_import(path)
    assert again.errors == []
    assert again.threads["created"] == again.threads["updated"] == 0
    assert again.messages["created"] == again.messages["updated"] == 0
    assert again.messages["unchanged"] == messages
    assert await snapshot() == before


@pytest.mark.parametrize(
    "path",
    [p for p in FILES if p.name in ("librechat__chatgpt-tree.json", "ai-blaise__full.jsonl",
                                    "osteele__claude-bakery-chat.json")],
    ids=lambda p: p.name,
)  # fmt: skip
async def test_naming_the_format_gives_what_auto_detection_gives(path):
    auto = await run_import(path, org="org-auto")
    named = await run_import(path, org="org-named", format=auto.format)
    assert not named.detected and named.format == auto.format
    assert (named.threads, named.messages) == (auto.threads, auto.messages)


@pytest.mark.parametrize(
    "path",
    [p for p in FILES if p.name in ("librechat__chatbotui-export.json",
                                    "librechat__chatgpt-export.json",
                                    "openwebui-importer__webui-json.json")],
    ids=lambda p: p.name,
)  # fmt: skip
async def test_the_same_file_minified_and_gzipped_imports_the_same(path):
    plain = await run_import(path, org="org-plain")
    packed = gzip.compress(json.dumps(json.loads(path.read_text())).encode())  # one line
    again = await run_import(packed, org="org-packed")
    assert again.errors == [] and again.format == plain.format
    assert (again.threads, again.messages) == (plain.threads, plain.messages)


@pytest.mark.parametrize(
    "path",
    [p for p in FILES if p.name in ("librechat__chatgpt-export.json",
                                    "openwebui-importer__claude_thinking_example.json",
                                    "anthropic-sdk-python__e075a6c2.json")],
    ids=lambda p: p.name,
)  # fmt: skip
async def test_a_list_file_written_as_jsonl_imports_the_same(path):
    plain = await run_import(path, org="org-plain")
    lines = "\n".join(json.dumps(item) for item in json.loads(path.read_text()))
    again = await run_import(lines, org="org-lines")
    assert again.errors == [] and again.format == plain.format
    assert (again.threads, again.messages) == (plain.threads, plain.messages)
