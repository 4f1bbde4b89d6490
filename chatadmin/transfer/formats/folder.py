"""Seed 003's JSON conversation files (the hybrid store's backup folder), one conversation each.

A file holds `{conversation_id, user_id, created_at, updated_at, context, messages: [{role,
content, timestamp, agent_steps, pdf_names, source_citations, meta_data}]}` (a list of them is
accepted too). Messages have no ids of their own, so a message's id is its thread's and its
index: a file that grows gets its new messages appended, and an edited message is updated.
`agent_steps` become a `structured_data` block, `source_citations` `citation` blocks, `pdf_names`
references (`kind: "pdf"`), `meta_data` the message metadata, `context` the thread's.
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
    citation,
    client_id,
    compact,
    digest,
    first_user_text,
    per_item,
    role_of,
    source_id,
    structured,
    text_of,
    timestamp,
    title,
)

NAME = "folder"
MARKERS = ("agent_steps", "pdf_names", "source_citations", "meta_data")
QUOTE_KEYS = ("text", "content", "snippet", "quote", "excerpt", "cited_text")
TITLE_KEYS = ("title", "source", "document", "pdf_name", "file_name", "name")
URL_KEYS = ("url", "link", "source_url", "href")


def looks_like(value: Any) -> bool:
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        return False
    if "mapping" in value or "conversationId" in value:
        return False
    msgs = [m for m in value["messages"][:5] if isinstance(m, dict)]
    return "conversation_id" in value or any(k in m for m in msgs for k in MARKERS)


def conversations(items, ctx: Context):
    return per_item(items, convert, ctx)


def convert(value: Any, position: Position, ctx: Context) -> Conversation:
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        raise Bad("a conversation file must be an object with a messages array")
    conv_id = source_id(value.get("conversation_id")) or source_id(value.get("id"))
    thread_id = client_id(NAME, conv_id or digest(value))
    owner = ctx.user_id
    if source_id(value.get("user_id")) and not ctx.user_given:
        owner = client_id(source_id(value["user_id"]))
    conv = Conversation(position, thread_id, owner=owner)
    ids = Ids(thread_id)
    for n, msg in enumerate(value["messages"]):
        if not isinstance(msg, dict):
            raise Bad(f"messages[{n}] is not an object")
        mid = ids(msg.get("message_id") or msg.get("id"), n)
        conv.messages.append(Record(mid, _turn(msg, n), f"messages[{n}]"))
    kept = {k: v for k, v in value.items() if k not in ("messages", "title", "_id")}
    conv.thread = compact(
        {
            "user_id": owner,
            "title": title(value.get("title") or first_user_text(conv)[:80]),
            "created_at": timestamp(value.get("created_at")),
            "initial_source": f"import:{NAME}",
            "metadata": {"source": {"format": NAME, "id": conv_id, "conversation": kept}},
        }
    )
    return conv


def _turn(msg: dict, n: int) -> dict:
    blocks, _extras = anthropic.blocks(msg.get("content") if msg.get("content") is not None else "")
    steps = msg.get("agent_steps")
    if steps:
        blocks.append(structured("agent_steps", steps))
    for c in msg.get("source_citations") or []:
        blocks.append(_citation(c))
    data: dict[str, Any] = {
        "role": role_of(msg.get("role")),
        "content": blocks,
        "metadata": {"source": {"format": NAME, "index": n}},
    }
    if isinstance(msg.get("meta_data"), dict) and msg["meta_data"]:
        data["metadata"]["meta_data"] = msg["meta_data"]
    names = [text_of(p) for p in msg.get("pdf_names") or [] if text_of(p)]
    if names:
        data["references"] = [{"kind": "pdf", "ref_id": p[:500], "label": p[:500]} for p in names][
            :100
        ]
    created = timestamp(msg.get("timestamp") or msg.get("created_at"))
    if created:
        data["created_at"] = created
    return data


def _citation(c: Any) -> dict:
    if not isinstance(c, dict):
        return structured("source_citation", c)
    quote = next((c[k] for k in QUOTE_KEYS if isinstance(c.get(k), str)), None)
    name = next((c[k] for k in TITLE_KEYS if isinstance(c.get(k), str)), None)
    url = next((c[k] for k in URL_KEYS if isinstance(c.get(k), str)), None)
    if quote is None and name is None and url is None:
        return structured("source_citation", c)
    used = set(QUOTE_KEYS + TITLE_KEYS + URL_KEYS)
    location = compact({k: v for k, v in c.items() if k not in used}) or None
    return citation(quote or "", title_=name, url=url, location=location)
