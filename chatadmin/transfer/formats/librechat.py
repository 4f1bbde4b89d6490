"""LibreChat's conversation export, and the Chatbot UI export that LibreChat also imports.

LibreChat: one conversation per file, its `messages` either nested (`recursive: true`, replies
in `children`) or flat, linked by `parentMessageId`. There is no "current" message, so the main
branch is the path from the newest leaf (by `createdAt`) to its root; other branches follow,
marked `main_branch: false` with their parent's id. `isCreatedByUser` (else `sender`) gives the
role, `text` (or the newer `content` parts) the blocks, `tokenCount` the tokens, `error` the
status. Chatbot UI (`{version, history: [...]}`): each history entry is a linear conversation,
its `prompt` the system message.
"""

from __future__ import annotations

from typing import Any

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
    image_block,
    image_url,
    per_item,
    role_of,
    source_id,
    structured,
    text_block,
    text_of,
    timestamp,
    title,
    tool_result,
    tool_use,
)

NAME = "librechat"
ROOT_IDS = (None, "", "00000000-0000-0000-0000-000000000000")


def is_chatbot_ui(value: Any, position: Position | None = None) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("messages"), list)
        and "conversationId" not in value
        and (
            (position is not None and position.path == "history")
            or ("name" in value and ("folderId" in value or "prompt" in value))
        )
    )


def looks_like(value: Any, position: Position | None = None) -> bool:
    return (
        isinstance(value, dict)
        and "conversationId" in value
        and isinstance(value.get("messages"), list)
    ) or is_chatbot_ui(value, position)


def conversations(items, ctx: Context):
    return per_item(items, convert, ctx)


def convert(value: Any, position: Position, ctx: Context) -> Conversation:
    if is_chatbot_ui(value, position):
        return _chatbot_ui(value, position, ctx)
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        raise Bad("a LibreChat conversation must be an object with a messages array")
    conv_id = source_id(value.get("conversationId"))
    thread_id = client_id(NAME, conv_id or digest(value))
    nodes = _flatten(value["messages"])
    if not nodes:
        raise Bad("the conversation has no messages")
    main = _main_branch(nodes)
    ordered = [nodes[i] for i in main] + [n for i, n in enumerate(nodes) if i not in set(main)]
    owner = ctx.user_id
    first_user = next((source_id(n[0].get("user")) for n in nodes if n[0].get("user")), None)
    if first_user and not ctx.user_given:
        owner = client_id(first_user)
    ids = Ids(thread_id)
    conv = Conversation(position, thread_id, owner=owner)
    on_main = {id(nodes[i][0]) for i in main}
    last = None  # a message without a time takes the one before it
    for n, (msg, parent) in enumerate(ordered):
        data = _turn(msg, parent, id(msg) in on_main)
        if "created_at" in data:
            last = data["created_at"]
        elif last:
            data["created_at"] = last
        conv.messages.append(Record(ids(msg.get("messageId"), n), data, f"message {n}"))
    kept = {k: v for k, v in value.items() if k not in ("messages", "title")}
    conv.thread = compact(
        {
            "user_id": owner,
            "title": title(value.get("title")),
            "created_at": next(
                (
                    timestamp(m.get("createdAt"))
                    for m, _ in ordered
                    if timestamp(m.get("createdAt"))
                ),
                None,
            ),
            "initial_source": f"import:{NAME}",
            "metadata": {"source": {"format": NAME, "id": conv_id, "conversation": kept}},
        }
    )
    return conv


def _flatten(messages: list) -> list[tuple[dict, Any]]:
    """Every message with its parent id, whether nested (`children`) or flat."""
    out, stack = [], [(m, None) for m in reversed(messages)]
    while stack:
        msg, nested_parent = stack.pop()
        if not isinstance(msg, dict):
            raise Bad("a message is not an object")
        parent = msg.get("parentMessageId", nested_parent)
        out.append((msg, None if parent in ROOT_IDS else parent))
        children = msg.get("children") if isinstance(msg.get("children"), list) else []
        stack.extend((c, msg.get("messageId")) for c in reversed(children))
    return out


def _main_branch(nodes: list[tuple[dict, Any]]) -> list[int]:
    by_id = {m.get("messageId"): i for i, (m, _) in enumerate(nodes) if m.get("messageId")}
    parents = {p for _, p in nodes if p is not None}
    leaves = [i for i, (m, _) in enumerate(nodes) if m.get("messageId") not in parents]
    if not leaves:
        return list(range(len(nodes)))
    newest = max(leaves, key=lambda i: (timestamp(nodes[i][0].get("createdAt")) or "", i))
    path, seen, at = [], set(), newest
    while at is not None and at not in seen:
        seen.add(at)
        path.append(at)
        at = by_id.get(nodes[at][1])
    return path[::-1]


def _turn(msg: dict, parent: Any, main: bool) -> dict:
    if isinstance(msg.get("isCreatedByUser"), bool):
        role = "user" if msg["isCreatedByUser"] else "assistant"
    else:
        role = role_of(msg.get("sender"), "assistant")
    blocks = _parts(msg.get("content")) if isinstance(msg.get("content"), list) else []
    if not any(b["type"] == "text" for b in blocks):
        blocks.insert(0, text_block(msg.get("text")))
    blocks += [
        structured("file", f) for f in (msg.get("files") or []) + (msg.get("attachments") or [])
    ]
    keep = ("sender", "endpoint", "finish_reason", "unfinished", "isEdited", "conversationId")
    source = compact(
        {
            "format": NAME,
            "id": source_id(msg.get("messageId")),
            "parent": parent,
            "main_branch": main,
            **{k: msg.get(k) for k in keep},
        }
    )
    data: dict[str, Any] = {"role": role, "content": blocks, "metadata": {"source": source}}
    created = timestamp(msg.get("createdAt"))
    if created:
        data["created_at"] = created
    tokens = msg.get("tokenCount")
    model = msg.get("model")
    if role == "assistant" and (isinstance(model, str) or isinstance(tokens, int)):
        data["ai_metadata"] = compact(
            {
                "model": model[:200] if isinstance(model, str) and model else None,
                "output_tokens": tokens if isinstance(tokens, int) and tokens >= 0 else None,
            }
        )
    if msg.get("error") is True:
        data["status"] = "error"
        data["error"] = {"code": "error", "message": text_of(msg.get("text"))[:5000]}
    return data


def _parts(parts: list) -> list[dict]:
    out = []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            out.append(text_block(text.get("value") if isinstance(text, dict) else text))
        elif kind == "tool_call" and isinstance(part.get("tool_call"), dict):
            call = part["tool_call"]
            cid = call.get("id") or call.get("name")
            out.append(tool_use(cid, call.get("name"), call.get("args", call.get("arguments", {}))))
            if call.get("output") is not None:
                out.append(tool_result(cid, call.get("output")))
        elif kind in ("image_url", "image_file") and image_url(part):
            out.append(image_block(image_url(part)))
        else:
            out.append(structured(text_of(kind) or "part", part))
    return out


def _chatbot_ui(value: dict, position: Position, ctx: Context) -> Conversation:
    conv_id = source_id(value.get("id"))
    thread_id = client_id("chatbotui", conv_id or digest(value))
    ids = Ids(thread_id)
    conv = Conversation(position, thread_id, owner=ctx.user_id)
    if text_of(value.get("prompt")).strip():
        conv.messages.append(
            Record(
                ids(None, "prompt"),
                {
                    "role": "system",
                    "content": [text_block(value["prompt"])],
                    "metadata": {"source": {"format": "chatbotui", "prompt": True}},
                },
                "prompt",
            )
        )
    for n, msg in enumerate(value["messages"]):
        if not isinstance(msg, dict):
            raise Bad(f"messages[{n}] is not an object")
        data = {
            "role": role_of(msg.get("role")),
            "content": [text_block(msg.get("content"))],
            "metadata": {"source": {"format": "chatbotui", "index": n}},
        }
        conv.messages.append(Record(ids(None, n), data, f"messages[{n}]"))
    kept = {k: v for k, v in value.items() if k not in ("messages", "name", "prompt")}
    conv.thread = {
        "user_id": ctx.user_id,
        "title": title(value.get("name")),
        "initial_source": f"import:{NAME}",
        "metadata": {"source": {"format": "chatbotui", "id": conv_id, "conversation": kept}},
    }
    return conv
