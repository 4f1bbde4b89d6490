"""The ChatGPT account export (`conversations.json`): conversations with a `mapping` tree.

The visible branch is `current_node` walked up its `parent` links to the root (without a
`current_node`: the newest leaf). Its messages come first, in order; the messages of the other
branches (edits, regenerations) follow, each marked `metadata.source.main_branch = false` with
its parent's id, so the tree can be rebuilt from what is stored. Tool calls are assistant
messages addressed to a tool (`recipient`), answered by `author.role == "tool"` messages: they
become `tool_use` blocks and `tool_result` blocks linked by the calling message's id. Content
types without a block of their own (thoughts, reasoning recaps, custom instructions, and any
type not known here) are kept whole as `structured_data`, never dropped.
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
    Skipped,
    citation,
    client_id,
    compact,
    digest,
    image_block,
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

NAME = "chatgpt"
TOOL_TYPES = ("execution_output", "tether_browsing_display", "tether_quote", "text", "code")


def looks_like(value: Any) -> bool:
    return isinstance(value, dict) and (
        "mapping" in value
        or "current_node" in value
        or {"conversation_id", "create_time", "title"} <= set(value)
    )


def conversations(items, ctx: Context):
    return per_item(items, convert, ctx)


def convert(value: Any, position: Position, ctx: Context):
    if not isinstance(value, dict):
        raise Bad("a ChatGPT conversation must be an object")
    conv_id = source_id(value.get("conversation_id")) or source_id(value.get("id"))
    mapping = value.get("mapping")
    if not isinstance(mapping, dict) or not mapping:
        return Skipped(position, f"conversation {conv_id or '?'} has no mapping (no messages)")
    nodes = {k: n for k, n in mapping.items() if isinstance(n, dict)}
    thread_id = client_id(NAME, conv_id or digest(value))
    main = _main_path(nodes, value.get("current_node"))
    on_main = set(main)
    order = main + [n for n in _depth_first(nodes) if n not in on_main]
    ids = Ids(thread_id)
    msg_ids = {n: ids(_message(nodes[n]).get("id") or n, n) for n in order if _message(nodes[n])}
    default_time = timestamp(value.get("create_time"))
    conv = Conversation(
        position,
        thread_id,
        thread=_thread(value, conv_id, ctx),
        owner=ctx.user_id,
    )
    last_time = default_time
    for node_id in order:
        msg = _message(nodes[node_id])
        if not msg:
            continue
        created = timestamp(msg.get("create_time")) or last_time
        last_time = created or last_time
        data = _turn(msg, nodes, node_id, node_id in on_main, msg_ids)
        if created:
            data["created_at"] = created
        conv.messages.append(Record(msg_ids[node_id], data, f"message {msg.get('id') or node_id}"))
    if not conv.messages:
        return Skipped(position, f"conversation {conv_id or '?'} has no messages")
    return conv


def _message(node: dict) -> dict:
    msg = node.get("message")
    return msg if isinstance(msg, dict) else {}


def _main_path(nodes: dict, current: Any) -> list[str]:
    if not isinstance(current, str) or current not in nodes:
        leaves = [
            k for k, n in nodes.items() if not [c for c in n.get("children") or [] if c in nodes]
        ]
        if not leaves:
            return []
        current = max(
            enumerate(leaves),
            key=lambda p: (_number(_message(nodes[p[1]]).get("create_time")), p[0]),
        )[1]
    path, seen, node = [], set(), current
    while isinstance(node, str) and node in nodes and node not in seen:
        seen.add(node)
        path.append(node)
        node = nodes[node].get("parent")
    return path[::-1]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _depth_first(nodes: dict) -> list[str]:
    roots = [k for k, n in nodes.items() if n.get("parent") not in nodes]
    out, seen, stack = [], set(), list(reversed(roots))
    while stack:
        node = stack.pop()
        if node in seen or node not in nodes:
            continue
        seen.add(node)
        out.append(node)
        children = [c for c in nodes[node].get("children") or [] if isinstance(c, str)]
        stack.extend(reversed(children))
    return out + [k for k in nodes if k not in seen]  # cycles, orphans


def _thread(value: dict, conv_id: str | None, ctx: Context) -> dict:
    kept = {k: v for k, v in value.items() if k != "mapping"}
    return compact(
        {
            "user_id": ctx.user_id,
            "title": title(value.get("title")),
            "created_at": timestamp(value.get("create_time")),
            "initial_source": f"import:{NAME}",
            "status": "archived" if value.get("is_archived") is True else "active",
            "is_favorited": value.get("is_starred") is True,
            "metadata": {"source": {"format": NAME, "id": conv_id, "conversation": kept}},
        }
    )


def _caller(nodes: dict, node_id: str, msg_ids: dict) -> str | None:
    """The id of the tool call a tool message answers: its nearest ancestor addressed to a tool."""
    node = nodes[node_id].get("parent")
    for _ in range(50):
        if not isinstance(node, str) or node not in nodes:
            return None
        msg = _message(nodes[node])
        if msg and msg.get("recipient") not in (None, "all"):
            return msg_ids.get(node)
        if msg and role_of((msg.get("author") or {}).get("role")) in ("user", "assistant"):
            return None
        node = nodes[node].get("parent")
    return None


def _turn(msg: dict, nodes: dict, node_id: str, main: bool, msg_ids: dict) -> dict:
    author = msg.get("author") if isinstance(msg.get("author"), dict) else {}
    role = role_of(author.get("role"))
    content = msg.get("content") if isinstance(msg.get("content"), dict) else {}
    ctype = text_of(content.get("content_type")) or "text"
    recipient = msg.get("recipient")
    meta = msg.get("metadata") if isinstance(msg.get("metadata"), dict) else {}
    call = _caller(nodes, node_id, msg_ids) if role == "tool" else None
    blocks, error = _blocks(content, ctype, msg_ids[node_id], recipient, call)
    blocks += _citations(meta, blocks) + [structured("attachment", a) for a in _attachments(meta)]
    source = compact(
        {
            "format": NAME,
            "id": source_id(msg.get("id")),
            "node": node_id,
            "parent": nodes[node_id].get("parent"),
            "main_branch": main,
            "content_type": ctype,
            "recipient": recipient if recipient not in (None, "all") else None,
            "author_name": author.get("name"),
            "status": msg.get("status"),
            "hidden": meta.get("is_visually_hidden_from_conversation") is True or None,
            "metadata": meta or None,
        }
    )
    data: dict[str, Any] = {"role": role, "content": blocks, "metadata": {"source": source}}
    model = meta.get("model_slug")
    if role == "assistant" and isinstance(model, str) and model:
        data["ai_metadata"] = {"model": model[:200]}
    if error:
        data["status"] = "error"
        data["error"] = {"code": "system_error", "message": error[:5000]}
    return data


def _blocks(content: dict, ctype: str, msg_id: str, recipient: Any, call: str | None):
    """The blocks of one message's content, and an error text for `system_error`."""
    rest = {k: v for k, v in content.items() if k != "content_type"}
    to_tool = isinstance(recipient, str) and recipient not in ("all", "")
    if ctype in ("text", "multimodal_text"):
        parts = content.get("parts") if isinstance(content.get("parts"), list) else []
        if to_tool:
            joined = "".join(p for p in parts if isinstance(p, str))
            return [tool_use(msg_id, recipient, joined)], None
        blocks = _parts(parts)
        if call:
            return [
                tool_result(call, "\n".join(b["text"] for b in blocks if b["type"] == "text"))
            ] + [b for b in blocks if b["type"] != "text"], None
        return blocks, None
    if ctype == "code":
        code, lang = text_of(content.get("text")), text_of(content.get("language"))
        if to_tool:
            return [tool_use(msg_id, recipient, {"code": code, "language": lang or None})], None
        return [text_block(f"```{lang if lang != 'unknown' else ''}\n{code}\n```")], None
    if ctype == "execution_output":
        out = text_of(content.get("text"))
        return [tool_result(call, out) if call else text_block(out)], None
    if ctype == "tether_browsing_display":
        out = text_of(content.get("result")) or text_of(content.get("summary"))
        blocks = [tool_result(call, out) if call else text_block(out)]
        if content.get("assets"):
            blocks.append(structured("assets", content.get("assets")))
        return blocks, None
    if ctype == "tether_quote":
        quote = citation(
            content.get("text"),
            title_=content.get("title"),
            url=content.get("url"),
            location=compact({"domain": content.get("domain")}),
        )
        return ([tool_result(call, text_of(content.get("text")))] if call else []) + [quote], None
    if ctype == "system_error":
        text = text_of(content.get("text")) or text_of(content.get("name")) or "system error"
        return [structured(ctype, rest)], text
    return [structured(ctype, rest)], None  # thoughts, reasoning_recap, user_editable_context, ...


def _parts(parts: list) -> list[dict]:
    blocks = []
    for part in parts:
        if isinstance(part, str):
            if part or not blocks:
                blocks.append(text_block(part))
        elif isinstance(part, dict) and part.get("content_type") == "image_asset_pointer":
            url = text_of(part.get("asset_pointer")).strip() or "file-service://unknown"
            blocks.append(image_block(url, width=part.get("width"), height=part.get("height")))
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            blocks.append(text_block(part["text"]))
        else:
            name = part.get("content_type") if isinstance(part, dict) else "part"
            blocks.append(structured(text_of(name) or "part", part))
    return blocks or [text_block("")]


def _citations(meta: dict, blocks: list[dict]) -> list[dict]:
    found = meta.get("citations")
    if not isinstance(found, list):
        return []
    text = "".join(b["text"] for b in blocks if b["type"] == "text")
    out = []
    for c in found:
        if not isinstance(c, dict):
            continue
        info = c.get("metadata") if isinstance(c.get("metadata"), dict) else {}
        start, end = c.get("start_ix"), c.get("end_ix")
        span = text[start:end] if isinstance(start, int) and isinstance(end, int) else ""
        location = compact({"start_ix": start, "end_ix": end})
        out.append(
            citation(
                info.get("text") or span,
                title_=info.get("title"),
                url=info.get("url"),
                location=location,
            )
        )
    return out


def _attachments(meta: dict) -> list:
    found = meta.get("attachments")
    return [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []
