"""Open WebUI chat exports: one chat object, or "export all chats" rows wrapping one each.

Messages form a tree (`history.messages`, linked by `parentId`); the main branch is
`history.currentId` walked up to the root, other branches (regenerations) follow, marked
`main_branch: false`. A message's `content` is Markdown text, kept as it is (quirks such as
doubled single quotes included); when the structured `output[]` items are present they are used
instead: `reasoning` as `structured_data`, `function_call` / `function_call_output` as
`tool_use` / `tool_result` linked by `call_id`, `message` as text. `usage` gives the tokens;
times are epoch seconds (or milliseconds, told apart by size).
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

NAME = "openwebui"


def _chat(value: Any) -> dict | None:
    if not isinstance(value, dict):
        return None
    chat = value.get("chat") if isinstance(value.get("chat"), dict) else value
    history = chat.get("history")
    return chat if isinstance(history, dict) and "messages" in history else None


def looks_like(value: Any) -> bool:
    return _chat(value) is not None


def conversations(items, ctx: Context):
    return per_item(items, convert, ctx)


def convert(value: Any, position: Position, ctx: Context) -> Conversation:
    chat = _chat(value)
    if chat is None:
        raise Bad("an Open WebUI chat must have history.messages")
    row = value if chat is not value else {}
    history = chat["history"]
    nodes = _nodes(history.get("messages"), chat.get("messages"))
    if not nodes:
        raise Bad("the chat has no messages")
    main = _main_path(nodes, history.get("currentId"), chat.get("messages"))
    order = main + [k for k in nodes if k not in set(main)]
    root = next(iter(main or order), None)
    conv_id = source_id(row.get("id")) or source_id(chat.get("id"))
    thread_id = client_id(NAME, conv_id or (f"root-{root}" if root else digest(value)))
    owner = ctx.user_id
    given = source_id(row.get("user_id")) or source_id(chat.get("userId"))
    if given and not ctx.user_given:
        owner = client_id(given)
    ids = Ids(thread_id)
    conv = Conversation(position, thread_id, owner=owner)
    on_main = set(main)
    for key in order:
        data = _turn(nodes[key], key in on_main)
        conv.messages.append(Record(ids(key, key), data, f"message {key}"))
    created = timestamp(row.get("created_at")) or timestamp(chat.get("timestamp"))
    kept = {k: v for k, v in chat.items() if k not in ("history", "messages", "title", "tags")}
    row_kept = {k: v for k, v in row.items() if k not in ("chat", "title")}
    conv.thread = compact(
        {
            "user_id": owner,
            "title": title(row.get("title") or chat.get("title")),
            "created_at": created,
            "initial_source": f"import:{NAME}",
            "status": "archived" if row.get("archived") is True else "active",
            "is_pinned": row.get("pinned") is True,
            "tags": _tags(chat.get("tags")),
            "metadata": {
                "source": {"format": NAME, "id": conv_id, "chat": kept, "row": row_kept or None}
            },
        }
    )
    return conv


def _nodes(tree: Any, linear: Any) -> dict[str, dict]:
    if isinstance(tree, dict) and tree:
        return {str(k): m for k, m in tree.items() if isinstance(m, dict)}
    if isinstance(linear, list):
        return {str(m.get("id") or n): m for n, m in enumerate(linear) if isinstance(m, dict)}
    return {}


def _main_path(nodes: dict, current: Any, linear: Any) -> list[str]:
    if not isinstance(current, str) or current not in nodes:
        if isinstance(linear, list) and linear:
            found = [str(m.get("id")) for m in linear if isinstance(m, dict)]
            return [k for k in found if k in nodes]
        current = list(nodes)[-1]
    path, seen, at = [], set(), current
    while isinstance(at, str) and at in nodes and at not in seen:
        seen.add(at)
        path.append(at)
        at = nodes[at].get("parentId")
    return path[::-1]


def _turn(msg: dict, main: bool) -> dict:
    role = role_of(msg.get("role"))
    output = msg.get("output")
    blocks = _output(output) if isinstance(output, list) and output else []
    if not blocks:
        blocks = [text_block(msg.get("content"))]
    for f in msg.get("files") or []:
        url = image_url(f) if isinstance(f, dict) else None
        is_image = isinstance(f, dict) and f.get("type") == "image"
        blocks.append(image_block(url) if url and is_image else structured("file", f))
    keep = ("parentId", "modelName", "modelIdx", "done", "userContext", "lastSentence")
    source = compact(
        {
            "format": NAME,
            "id": source_id(msg.get("id")),
            "main_branch": main,
            **{k: msg.get(k) for k in keep},
        }
    )
    data: dict[str, Any] = {"role": role, "content": blocks, "metadata": {"source": source}}
    created = timestamp(msg.get("timestamp"))
    if created:
        data["created_at"] = created
    if role == "assistant":
        ai = anthropic.usage(msg.get("usage"), msg.get("model"))
        if ai:
            data["ai_metadata"] = ai
    if msg.get("error"):
        data["status"] = "error"
        data["error"] = {"code": "error", "message": text_of(msg.get("error"))[:5000]}
    return data


def _output(items: list) -> list[dict]:
    out = []
    for item in items:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "function_call":
            out.append(
                tool_use(
                    item.get("call_id") or item.get("id"),
                    item.get("name"),
                    item.get("arguments", {}),
                )
            )
        elif kind == "function_call_output":
            out.append(tool_result(item.get("call_id") or item.get("id"), item.get("output")))
        elif kind == "message":
            parts = item.get("content") if isinstance(item.get("content"), list) else []
            out.append(
                text_block("".join(text_of(p.get("text")) for p in parts if isinstance(p, dict)))
            )
        else:
            out.append(structured(text_of(kind) or "output", item))
    return out


def _tags(tags: Any) -> list[str] | None:
    if not isinstance(tags, list):
        return None
    names = [text_of(t.get("name") if isinstance(t, dict) else t).strip()[:64] for t in tags]
    return list(dict.fromkeys(n for n in names if n))[:50] or None
