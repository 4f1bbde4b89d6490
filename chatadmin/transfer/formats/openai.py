"""OpenAI Chat Completions conversations: request bodies and fine-tuning lines (`messages`),
with the response's `choices[].message` appended where present.

`content` is a string or parts (`text`, `image_url` as `image_ref`, anything else kept as
`structured_data`). An assistant's `tool_calls` become `tool_use` blocks (their `arguments`, a
JSON string, decoded to the block's input; double-encoded strings decoded twice; text that is not
JSON kept as `{"arguments": ...}`), and `role: tool` messages `tool_result` blocks linked by
`tool_call_id`. The legacy `function_call` / `role: function` pair maps the same way. The first
choice is the main branch; further choices follow with `main_branch: false`. The thread id comes
from the record's `id`, `uuid` or `conversation_id`, else from a hash of the whole record.
"""

from __future__ import annotations

from typing import Any

from chatadmin.transfer.formats import anthropic
from chatadmin.transfer.formats.common import (
    Bad,
    Context,
    Conversation,
    Ids,
    Position,
    Record,
    client_id,
    compact,
    digest,
    first_user_text,
    image_block,
    image_url,
    per_item,
    role_of,
    source_id,
    structured,
    text_block,
    text_of,
    title,
    tool_result,
    tool_use,
)

NAME = "openai"
OWN_IDS = ("id", "uuid", "conversation_id", "thread_id")


def looks_like(value: Any) -> bool:
    if anthropic.is_exchange(value):
        return "/chat/completions" in text_of(value["request"].get("url"))
    return isinstance(value, dict) and (
        isinstance(value.get("messages"), list) or isinstance(value.get("choices"), list)
    )


def conversations(items, ctx: Context):
    return per_item(items, convert, ctx)


def convert(value: Any, position: Position, ctx: Context) -> Conversation:
    response = None
    if anthropic.is_exchange(value):
        body = value["request"]["body"]
        found = value.get("response")
        response = found.get("body") if isinstance(found, dict) else None
        value = body
    if not isinstance(value, dict):
        raise Bad("an OpenAI conversation must be an object")
    messages = value.get("messages", [])
    if not isinstance(messages, list):
        raise Bad("messages must be an array")
    if response is None and isinstance(value.get("choices"), list):
        response = value
    meta = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
    own = next((source_id(value.get(k)) for k in OWN_IDS if source_id(value.get(k))), None)
    if value.get("object") == "chat.completion" and not messages:
        own = None  # a response's id names the answer, not a conversation
    own = own or source_id(meta.get("thread_id")) or source_id(meta.get("conversation_id"))
    thread_id = client_id(NAME, own or digest(value))
    conv = Conversation(position, thread_id, owner=ctx.user_id)
    ids = Ids(thread_id)
    calls: dict[str, str] = {}  # legacy function name -> the id given to its call
    for n, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise Bad(f"messages[{n}] is not an object")
        mid = ids(msg.get("id"), n)
        conv.messages.append(Record(mid, _turn(msg, mid, calls), f"messages[{n}]"))
    if isinstance(response, dict):
        _choices(conv, ids, response, calls)
    if not conv.messages:
        raise Bad("the conversation has no messages")
    kept = {k: v for k, v in value.items() if k not in ("messages", "choices")}
    conv.thread = {
        "user_id": ctx.user_id,
        "title": title(value.get("title") or first_user_text(conv)[:80]),
        "initial_source": f"import:{NAME}",
        "metadata": {"source": {"format": NAME, "id": own, "record": kept}},
    }
    return conv


def _choices(conv: Conversation, ids: Ids, response: dict, calls: dict) -> None:
    choices = [c for c in response.get("choices") or [] if isinstance(c, dict)]
    for n, choice in enumerate(choices):
        msg = choice.get("message") if isinstance(choice.get("message"), dict) else None
        if msg is None:
            continue
        rid = source_id(response.get("id"))
        mid = ids(f"{rid}.{n}" if rid else None, f"choice{n}")
        data = _turn({"role": "assistant", **msg}, mid, calls)
        ai = anthropic.usage(response.get("usage"), response.get("model")) if n == 0 else None
        if ai:
            data["ai_metadata"] = ai
        data["metadata"]["source"].update(
            compact(
                {"choice": n, "main_branch": n == 0, "finish_reason": choice.get("finish_reason")}
            )
        )
        conv.messages.append(Record(mid, data, f"choices[{n}]"))


def _turn(msg: dict, mid: str, calls: dict) -> dict:
    role = role_of(msg.get("role"))
    raw_role = text_of(msg.get("role")).lower()
    blocks = _content(msg.get("content"))
    if role == "tool":
        call = msg.get("tool_call_id") or calls.get(text_of(msg.get("name")))
        text = "\n".join(b["text"] for b in blocks if b["type"] == "text")
        images = [b for b in blocks if b["type"] != "text"]
        blocks = [tool_result(call or f"{mid}-result", text), *images]
    for n, tc in enumerate(msg.get("tool_calls") or []):
        if isinstance(tc, dict):
            fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
            blocks.append(
                tool_use(
                    tc.get("id") or f"{mid}-{n}",
                    fn.get("name") or tc.get("name"),
                    fn.get("arguments", tc.get("arguments", {})),
                )
            )
    legacy = msg.get("function_call")
    if isinstance(legacy, dict):
        calls[text_of(legacy.get("name"))] = f"{mid}-call"
        blocks.append(tool_use(f"{mid}-call", legacy.get("name"), legacy.get("arguments", {})))
    for key in ("reasoning_content", "reasoning", "refusal", "audio"):
        if msg.get(key):
            blocks.append(structured(key, msg[key]))
    if len(blocks) > 1 and blocks[0] == text_block(""):
        blocks = blocks[1:]  # `content: ""` next to tool calls says nothing
    extra = {
        k: v
        for k, v in msg.items()
        if k
        not in (
            "role",
            "content",
            "tool_calls",
            "function_call",
            "tool_call_id",
            "id",
            "reasoning_content",
            "reasoning",
            "refusal",
            "audio",
        )
    }
    source = compact(
        {"format": NAME, "role": raw_role if raw_role != role else None, "message": extra or None}
    )
    return {"role": role, "content": blocks or [text_block("")], "metadata": {"source": source}}


def _content(content: Any) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [text_block(content)]
    if not isinstance(content, list):
        return [text_block(text_of(content))]
    out = []
    for part in content:
        if isinstance(part, str):
            out.append(text_block(part))
        elif isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text"):
            out.append(text_block(part.get("text")))
        elif (
            isinstance(part, dict)
            and part.get("type") in ("image_url", "input_image")
            and image_url(part)
        ):
            out.append(image_block(image_url(part)))
        else:
            name = part.get("type") if isinstance(part, dict) else "part"
            out.append(structured(text_of(name) or "part", part))
    return out
