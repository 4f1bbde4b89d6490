"""`manage.py import`, `export` and `sync` end to end, in a subprocess (`runner`): summaries,
exit codes, errors without tracebacks, gzip both ways."""

from __future__ import annotations

import gzip
import json

import pytest
from pymongo import MongoClient

from tests.transfer.conftest import sample


@pytest.fixture
def mongo(settings, runner):
    with MongoClient(settings.mongodb_uri) as client:
        yield client[runner.db_name]


def assert_clean_error(result, *needles: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.mark.parametrize("command", ["import", "export", "sync"])
def test_help_names_every_option(runner, command):
    result = runner(command, "--help")
    assert result.returncode == 0
    options = {"import": ["--org", "--format", "--dry-run", "--user"],
               "export": ["--org", "--since", "--thread", "--format", "-o"],
               "sync": ["--org", "--state", "--format", "--dry-run"]}[command]  # fmt: skip
    assert all(o in result.stdout for o in options)


def test_import_says_the_format_it_chose_then_a_second_import_creates_nothing(runner, mongo):
    path = str(sample("claude", "openwebui-importer__claude_example.json"))
    dry = runner("import", path, "--org", "acme", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would import 83 of 83" in dry.stdout and mongo.chat_messages.count_documents({}) == 0
    first = runner("import", path, "--org", "acme")
    assert first.returncode == 0, first.stderr
    assert "format: claude (detected)" in first.stdout
    assert "threads 83 created; messages 557 created" in first.stdout
    assert "skipped: 2; errors: 0" in first.stdout
    assert "import" in first.stderr  # the progress bar
    again = runner("import", path, "--org", "acme", "--no-progress")
    assert again.returncode == 0 and "threads 83 unchanged; messages 557 unchanged" in again.stdout
    assert mongo.chat_messages.count_documents({"org_id": "acme"}) == 557


def test_malformed_input_is_a_clear_error_with_its_position(runner, mongo, tmp_path):
    good = {"id": "a", "messages": [{"role": "user", "content": "hi"}]}
    path = tmp_path / "calls.jsonl"
    path.write_text(json.dumps(good) + '\n{"id": "b", "messages": [\n')
    result = runner("import", str(path), "--org", "acme")
    assert_clean_error(result, "error: calls.jsonl: line 2: malformed JSON")
    assert mongo.chat_sessions.count_documents({}) == 1  # the good line
    truncated = tmp_path / "conversations.json"
    text = sample("chatgpt", "librechat__chatgpt-export.json").read_text()
    truncated.write_text(text[:-2000])  # inside its second (last) conversation
    result = runner("import", str(truncated), "--org", "acme", "--format", "chatgpt")
    assert_clean_error(result, "conversations.json: conversation index 1: malformed JSON")
    assert "imported 1 of 1 conversations" in result.stdout
    assert_clean_error(runner("import", str(tmp_path / "nope.json"), "--org", "acme"),
                       "no such file")  # fmt: skip
    assert_clean_error(runner("import", str(path), "--org", "bad org"), "not a valid id")


def test_export_gzip_then_import_into_another_org(runner, mongo, tmp_path):
    path = str(sample("chatgpt", "librechat__chatgpt-tree.json"))
    assert runner("import", path, "--org", "acme").returncode == 0
    out = tmp_path / "acme.jsonl.gz"
    result = runner("export", "--org", "acme", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "exported 1 threads, 12 messages, 1 users (native)" in result.stdout
    with gzip.open(out, "rt") as f:
        assert json.loads(f.readline())["chatadmin"] == "native"
    copy = runner("import", str(out), "--org", "copy")
    assert copy.returncode == 0 and "format: native (detected)" in copy.stdout
    assert mongo.chat_messages.count_documents({"org_id": "copy"}) == 12
    md = runner("export", "--org", "acme", "--format", "markdown", "-o", str(tmp_path / "a.md"))
    assert md.returncode == 0 and (tmp_path / "a.md").read_text().startswith("# Assist user")
    missing = runner("export", "--org", "acme", "--thread", "nope", "-o", str(tmp_path / "x"))
    assert_clean_error(missing, "not found")
    assert_clean_error(runner("export", "--org", "acme", "-o", str(tmp_path / "no" / "x.jsonl")),
                       "no such folder")  # fmt: skip


def test_sync_twice_imports_once_then_picks_up_a_change(runner, mongo, tmp_path):
    folder = tmp_path / "convs"
    folder.mkdir()
    turn = {"role": "user", "content": "hi", "timestamp": "2024-05-01T10:00:00Z"}
    conv = {"conversation_id": "c1", "user_id": "u1", "messages": [turn]}
    (folder / "c1.json").write_text(json.dumps(conv))
    first = runner("sync", str(folder), "--org", "acme")
    assert first.returncode == 0, first.stderr
    assert "sync: 1 files, 1 imported, 0 unchanged" in first.stdout
    second = runner("sync", str(folder), "--org", "acme")
    assert "sync: 1 files, 0 imported, 1 unchanged" in second.stdout
    conv["messages"].append({"role": "assistant", "content": "hello"})
    (folder / "c1.json").write_text(json.dumps(conv))
    third = runner("sync", str(folder), "--org", "acme")
    assert "1 imported" in third.stdout and "messages 1 created, 1 unchanged" in third.stdout
    assert mongo.chat_messages.count_documents({"thread_id": "folder:c1"}) == 2
    assert list((tmp_path / "data" / "sync").glob("acme-*.json"))  # the state, in the data dir
