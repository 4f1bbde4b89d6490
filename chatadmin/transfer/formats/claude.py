"""The Claude (claude.ai) export: `conversations.json` (a list) or one web-API conversation.

`chat_messages` are in order. Their `content` blocks are read first (`text` with its citations,
`thinking`, `tool_use`, `tool_result`, and any other type kept as `structured_data`), falling back
to the message's `text` when there are none. Attachments (with their extracted text) and files
become `structured_data`, image files `image_ref`. The web-API variant has a tree
(`parent_message_uuid`, `current_leaf_message_uuid`): its visible branch comes first and other
branches follow, marked `main_branch: false`, as for ChatGPT.
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
    Skipped,
    client_id,
    clip,
    compact,
    digest,
    image_block,
    per_item,
    source_id,
    structured,
    text_block,
    text_of,
    timestamp,
    title,
)

NAME = "claude"
SENDERS = {"human": "user", "user": "user", "assistant": "assistant"}


def looks_like(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("chat_messages"), list)


def conversations(items, ctx: Context):
    return per_item(items, convert, ctx)


def convert(value: Any, position: Position, ctx: Context):
    if not isinstance(value, dict) or not isinstance(value.get("chat_messages"), list):
        raise Bad("a Claude conversation must be an object with chat_messages")
    conv_id = source_id(value.get("uuid")) or source_id(value.get("id"))
    thread_id = client_id(NAME, conv_id or digest(value))
    raw = [m for m in value["chat_messages"] if isinstance(m, dict)]
    if not raw:
        return Skipped(position, f"conversation {conv_id or '?'} has no messages")
    ordered, main = _branches(raw, value.get("current_leaf_message_uuid"))
    account = value.get("account") if isinstance(value.get("account"), dict) else {}
    owner = ctx.user_id
    if not ctx.user_given and source_id(account.get("uuid")):
        owner = client_id(source_id(account.get("uuid")))
    conv = Conversation(position, thread_id, thread=_thread(value, conv_id, owner), owner=owner)
    ids = Ids(thread_id)
    last = timestamp(value.get("created_at"))
    for n, msg in enumerate(ordered):
        created = timestamp(msg.get("created_at")) or last
        last = created or last
        data = _turn(msg, main is None or id(msg) in main)
        if created:
            data["created_at"] = created
        conv.messages.append(Record(ids(msg.get("uuid"), n), data, f"chat_messages[{n}]"))
    return conv


def _branches(raw: list[dict], leaf: Any) -> tuple[list[dict], set[int] | None]:
    """Messages with the visible branch first; None when the export is linear."""
    by_id = {m.get("uuid"): m for m in raw if isinstance(m.get("uuid"), str)}
    if not any("parent_message_uuid" in m for m in raw):
        return raw, None
    if not isinstance(leaf, str) or leaf not in by_id:
        leaf = raw[-1].get("uuid")
    path, seen, node = [], set(), by_id.get(leaf)
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        path.append(node)
        node = by_id.get(node.get("parent_message_uuid"))
    path.reverse()
    return path + [m for m in raw if id(m) not in seen], seen


def _thread(value: dict, conv_id: str | None, owner: str) -> dict:
    kept = {k: v for k, v in value.items() if k not in ("chat_messages", "name", "summary")}
    return compact(
        {
            "user_id": owner,
            "title": title(value.get("name")),
            "description": clip(value.get("summary"), 5000),
            "created_at": timestamp(value.get("created_at")),
            "initial_source": f"import:{NAME}",
            "is_favorited": value.get("is_starred") is True,
            "metadata": {"source": {"format": NAME, "id": conv_id, "conversation": kept}},
        }
    )


def _turn(msg: dict, main: bool) -> dict:
    sender = text_of(msg.get("sender")).lower()
    role = SENDERS.get(sender, "assistant" if sender else "user")
    content = msg.get("content") if isinstance(msg.get("content"), list) else []
    blocks, extras = anthropic.blocks(content)
    if not any(b["type"] == "text" and b["text"] for b in blocks) and text_of(msg.get("text")):
        blocks.insert(0, text_block(msg.get("text")))
    attachments = msg.get("attachments") if isinstance(msg.get("attachments"), list) else []
    blocks += [structured("attachment", att) for att in attachments]
    files = msg.get("files_v2") or msg.get("files")
    blocks += [_file(f) for f in files if f] if isinstance(files, list) else []
    source = compact(
        {
            "format": NAME,
            "id": source_id(msg.get("uuid")),
            "parent": msg.get("parent_message_uuid"),
            "main_branch": main,
            "sender": msg.get("sender"),
            "index": msg.get("index"),
            "stop_reason": msg.get("stop_reason"),
            "truncated": msg.get("truncated") or None,
            "block_extras": extras or None,
        }
    )
    return {"role": role, "content": blocks or [text_block("")], "metadata": {"source": source}}


def _file(entry: Any) -> dict:
    if not isinstance(entry, dict):
        return structured("file", {"file_name": text_of(entry)})
    if entry.get("file_kind") == "image":
        asset = entry.get("preview_asset") or entry.get("thumbnail_asset") or {}
        url = (asset.get("url") if isinstance(asset, dict) else None) or entry.get("preview_url")
        if isinstance(url, str) and url:
            return image_block(
                url,
                alt=entry.get("file_name"),
                width=asset.get("image_width"),
                height=asset.get("image_height"),
            )
    return structured("file", entry)
