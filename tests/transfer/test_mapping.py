"""How each format's fields land in ours: branches, tool calls and their results, content types
(unknown ones kept), attachments, times and ids, checked against what the files say."""

from __future__ import annotations

import json

import pytest

from chatadmin.models import Message, Thread, User
from tests.transfer.conftest import run_import, sample

pytestmark = pytest.mark.usefixtures("database")


async def messages_of(thread_id: str | None = None, org: str = "org-a") -> list[Message]:
    query = {"org_id": org} | ({"thread_id": thread_id} if thread_id else {})
    return await Message.find(query).sort([("thread_id", 1), ("seq", 1)]).to_list()


def blocks(messages: list[Message], kind: str) -> list:
    return [b for m in messages for b in m.content if b.type == kind]


# -- ChatGPT ------------------------------------------------------------------------------------


async def test_chatgpt_main_branch_is_current_node_to_root_and_other_branches_are_marked():
    path = sample("chatgpt", "librechat__chatgpt-tree.json")
    (conv,) = json.loads(path.read_text())
    mapping, node, branch = conv["mapping"], conv["current_node"], []
    while node:  # the visible branch, as the file defines it
        if mapping[node]["message"]:
            branch.append(mapping[node]["message"]["id"])
        node = mapping[node]["parent"]
    await run_import(path)
    stored = await messages_of()
    main = [m for m in stored if m.metadata["source"]["main_branch"]]
    assert [m.metadata["source"]["id"] for m in main] == branch[::-1]
    assert [m.seq for m in main] == list(range(len(branch)))
    others = [m for m in stored if not m.metadata["source"]["main_branch"]]
    assert len(others) == 5 and all(m.seq >= len(branch) for m in others)
    assert all(m.metadata["source"]["parent"] in mapping for m in others)
    thread = await Thread.find_one({"org_id": "org-a"})
    assert thread.thread_id == f"chatgpt:{conv['id']}" and thread.title == conv["title"]
    assert thread.message_count == 12


async def test_chatgpt_browsing_calls_become_tool_use_linked_to_tool_results():
    await run_import(sample("chatgpt", "librechat__chatgpt-export.json"))
    stored = await messages_of()
    uses = {b.id: m for m in stored for b in m.content if b.type == "tool_use"}
    assert {b.name for b in blocks(stored, "tool_use")} == {"browser"}
    for m in stored:
        for b in m.content:
            if b.type == "tool_result":
                assert m.role == "tool" and b.tool_use_id in uses
                assert uses[b.tool_use_id].seq < m.seq  # the call comes before its result
    assert blocks(stored, "citation"), "tether_quote and metadata.citations become citations"
    first = min((m for m in stored if m.role == "user"), key=lambda m: m.created_at)
    assert first.created_at.year == 2023  # the source's create_time, not the import's


async def test_chatgpt_content_types_attachments_and_images():
    await run_import(sample("chatgpt", "polylogue__native-conversation-v1.json"))
    stored = await messages_of()
    by_id = {m.metadata["source"]["id"]: m for m in stored}
    user = by_id["user-message"]
    assert [b.type for b in user.content] == ["text", "image_ref", "structured_data"]
    assert (user.content[1].url, user.content[1].width) == ("file-service://fixture-input-image", 8)
    assert user.content[2].name == "attachment" and user.content[2].data["name"] == "input.txt"
    kinds = {m.metadata["source"]["content_type"]: m.content[0] for m in stored}
    assert kinds["thoughts"].type == "structured_data" and kinds["thoughts"].name == "thoughts"
    assert kinds["reasoning_recap"].data == {"parts": ["Privacy-safe reasoning summary."]}
    assert kinds["user_editable_context"].data["user_profile"] == "Privacy-safe fixture profile."
    call = by_id["tool-call-message"].content[0]
    assert (call.type, call.name, call.input) == ("tool_use", "browser.search",
                                                  {"query": "fixture evidence"})  # fmt: skip
    result = by_id["tool-result-message"].content[0]
    assert result.type == "tool_result" and result.tool_use_id == call.id
    assert by_id["answer-inactive-message"].metadata["source"]["main_branch"] is False
    assert by_id["answer-active-message"].ai_metadata.model == "gpt-5-6-pro"


async def test_chatgpt_entry_without_mapping_is_skipped_with_a_reason():
    summary = await run_import(sample("chatgpt", "librechat__chatgpt-modern-export.json"))
    (skipped,) = summary.skipped
    assert "conversation index 1" in skipped.position and "no mapping" in skipped.message
    assert summary.errors == []


async def test_chatgpt_unknown_content_types_are_kept_as_structured_data(tmp_path):
    def node(nid, parent, role, content):
        msg = {"id": nid, "author": {"role": role}, "create_time": 1700000000, "content": content}
        return {"id": nid, "parent": parent, "children": [], "message": msg}

    conv = {"id": "c-1", "title": "odd types", "current_node": "b", "mapping": {
        "a": node("a", None, "user", {"content_type": "text", "parts": ["hi"]}),
        "b": node("b", "a", "assistant", {"content_type": "brand_new_type", "x": [1, {"y": 2}]}),
    }}  # fmt: skip
    conv["mapping"]["a"]["children"] = ["b"]
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([conv]))
    summary = await run_import(path)
    assert summary.errors == [] and summary.messages["created"] == 2
    odd = (await messages_of())[1]
    assert odd.content[0].type == "structured_data" and odd.content[0].name == "brand_new_type"
    assert odd.content[0].data == {"x": [1, {"y": 2}]}


# -- Claude -------------------------------------------------------------------------------------


async def test_claude_account_export_reads_content_then_text_and_skips_empty_conversations():
    path = sample("claude", "openwebui-importer__claude_example.json")
    convs = json.loads(path.read_text())
    summary = await run_import(path)
    assert len(summary.skipped) == sum(1 for c in convs if not c["chat_messages"]) == 2
    last = convs[-1]
    stored = await messages_of(f"claude:{last['uuid']}")
    assert [m.content[0].text for m in stored] == [
        m["content"][0]["text"] for m in last["chat_messages"]
    ]
    thread = await Thread.find_one({"thread_id": f"claude:{last['uuid']}"})
    assert thread.title == "How Photosynthesis Works"
    assert thread.user_id == last["account"]["uuid"]  # the account owns its threads
    assert await User.find_one({"org_id": "org-a", "user_id": last["account"]["uuid"]})
    assert stored[0].created_at.isoformat().startswith("2025-06-21T20:48:39.029")


async def test_claude_thinking_blocks_are_kept_and_empty_text_falls_back_to_content():
    await run_import(sample("claude", "openwebui-importer__claude_thinking_example.json"))
    _, answer = await messages_of()
    thinking, text = answer.content
    assert thinking.type == "structured_data" and thinking.name == "thinking"
    assert thinking.data["thinking"].startswith("The user asked for a greeting")
    assert text.text == "Hello there! It's great to hear from you."


async def test_claude_web_conversation_files_become_image_refs_on_the_main_branch():
    await run_import(sample("claude", "osteele__claude-bakery-chat.json"))
    stored = await messages_of()
    image = blocks(stored, "image_ref")[0]
    assert image.url.endswith("/preview") and (image.width, image.height) == (935, 1247)
    assert all(m.metadata["source"]["main_branch"] for m in stored)
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]


# -- OpenAI and Anthropic -----------------------------------------------------------------------


async def test_openai_tool_calls_and_tool_messages_are_linked_and_arguments_decoded():
    await run_import(sample("openai", "ai-blaise__full.jsonl"))
    stored = await messages_of("openai:full-001")
    assert [m.role for m in stored] == ["system", "user", "assistant", "tool", "assistant"]
    (call,) = stored[2].content
    assert (call.type, call.id, call.name, call.input) == (
        "tool_use", "call_weather_1", "get_weather", {"city": "Paris"})  # fmt: skip
    (result,) = stored[3].content
    assert result.tool_use_id == "call_weather_1" and "cloudy" in result.content


async def test_openai_double_encoded_arguments_are_decoded_twice():
    await run_import(sample("openai", "openai-cookbook__drone_training.first3.jsonl"))
    calls = {b.name: b.input for b in blocks(await messages_of(), "tool_use")}
    assert calls["land_drone"] == {"location": "current"}
    assert calls["takeoff_drone"] == {"altitude": 100}


async def test_openai_response_choices_are_appended_with_their_usage():
    record = {
        "id": "conv-1",
        "messages": [{"role": "user", "content": "2+2?"}],
        "choices": [
            {"message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"},
            {"message": {"role": "assistant", "content": "four"}},
        ],
        "model": "gpt-4o",
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
    summary = await run_import(json.dumps(record) + "\n" + json.dumps({**record, "id": "conv-2"}))
    assert summary.format == "openai" and summary.threads["created"] == 2
    _user, first, second = await messages_of("openai:conv-1")
    assert first.content[0].text == "4" and first.metadata["source"]["main_branch"] is True
    assert (first.ai_metadata.model, first.ai_metadata.total_tokens) == ("gpt-4o", 6)
    assert second.metadata["source"]["main_branch"] is False


async def test_anthropic_recorded_exchanges_are_one_conversation_with_the_last_response():
    path = sample("anthropic", "anthropic-sdk-python__10e53c1d.json")
    exchanges = json.loads(path.read_text())
    await run_import(path)
    stored = await messages_of()
    assert len(stored) == len(exchanges[-1]["request"]["body"]["messages"]) + 1
    (error,) = blocks(stored, "tool_result")
    assert error.is_error is True and "Unexpected error" in error.content
    assert stored[-1].metadata["source"]["id"] == exchanges[-1]["response"]["body"]["id"]
    assert stored[1].metadata["source"]["block_extras"]["0"]["caller"] == {"type": "direct"}


async def test_anthropic_streamed_response_is_assembled_from_its_events():
    await run_import(sample("anthropic", "anthropic-sdk-python__555fb399.json"))
    answer = (await messages_of())[-1]
    assert answer.role == "assistant" and "68°F" in answer.content[0].text
    assert answer.ai_metadata.model == "claude-haiku-4-5-20251001"
    assert answer.ai_metadata.input_tokens > 0 and answer.ai_metadata.output_tokens > 0


async def test_anthropic_blocks_are_kept_as_they_are():
    body = {
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Use the tool.", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"q": "SF"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1",
                 "content": [{"type": "text", "text": "sunny"}]},
            ]},
        ],
    }  # fmt: skip
    summary = await run_import(json.dumps(body))
    assert summary.format == "anthropic"
    system, _user, assistant, result = await messages_of()
    assert (system.role, system.content[0].text) == ("system", "Be brief.")
    thinking, use = assistant.content
    assert thinking.data == body["messages"][1]["content"][0]
    assert (use.id, use.name, use.input) == ("toolu_1", "weather", {"q": "SF"})
    assert result.content[0].tool_use_id == "toolu_1"
    assert result.content[0].content[0].text == "sunny"


async def test_claude_code_transcripts_are_one_conversation_with_their_result():
    await run_import(sample("anthropic", "claude-code-action__sample-turns.json"))
    thread = await Thread.find_one({"org_id": "org-a"})
    assert thread.thread_id == "anthropic:sample-session-id"
    transcript = thread.metadata["source"]["transcript"]
    assert transcript["result"]["duration_ms"] == 18750
    stored = await messages_of()
    assert stored[0].ai_metadata.model == "claude-test-model"
    assert [b.name for b in blocks(stored, "tool_use")][:2] == ["Read", "Edit"]


# -- LibreChat, Open WebUI ----------------------------------------------------------------------


async def test_librechat_flat_branches_keep_the_newest_leaf_as_main():
    path = sample("librechat", "librechat__librechat-opts-nonr-branches.json")
    await run_import(path)
    stored = await messages_of()
    main = [m for m in stored if m.metadata["source"]["main_branch"]]
    assert main[0].content[0].text == "tell me a long long story"
    assert [m.role for m in main] == ["user", "assistant"]
    assert main[1].ai_metadata.model == "gpt-4o" and main[1].ai_metadata.output_tokens == 110
    assert len(stored) - len(main) == 3


async def test_chatbot_ui_history_prompt_is_the_system_message():
    path = sample("librechat", "librechat__chatbotui-export.json")
    history = json.loads(path.read_text())["history"]
    summary = await run_import(path)
    assert summary.threads["created"] == len(history)
    stored = await messages_of(f"chatbotui:{history[0]['id']}")
    assert stored[0].role == "system" and stored[0].content[0].text == history[0]["prompt"]


async def test_openwebui_output_items_become_tool_use_and_tool_result():
    await run_import(sample("openwebui", "librechat__openwebui-export.json"))
    (answer,) = [m for m in await messages_of("openwebui:tool-chat") if m.role == "assistant"]
    use, result, text = answer.content
    assert (use.id, use.input) == ("call_1", {"city": "Paris"})
    assert result.tool_use_id == "call_1" and text.text.startswith("The weather in Paris")
    thread = await Thread.find_one({"thread_id": "openwebui:tool-chat"})
    assert thread.user_id == "u1"


async def test_openwebui_text_is_kept_as_it_is():
    await run_import(sample("openwebui", "openwebui-importer__webui-json.json"))
    user, answer = await messages_of()
    assert "can''t" in user.content[0].text  # the export's doubled quotes are not "fixed"
    assert answer.ai_metadata.total_tokens == 336 and answer.ai_metadata.model
