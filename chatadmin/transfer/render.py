"""Our messages as OpenAI Chat Completions and Anthropic Messages conversations (for export).

One conversation a line, `{"id", "title", "messages": [...]}` (Anthropic adds `"system"`),
written message by message as the cursor gives them, so no thread is held in memory.

OpenAI: text blocks (and citations, as quoted text) are the `content`, images `image_url` parts,
`tool_use` blocks an assistant's `tool_calls` (input as a JSON string), every `tool_result` a
`role: tool` message with its `tool_call_id`. Anthropic: blocks as they are (`text`, `tool_use`,
`tool_result`, `image` by URL); a `structured_data` block that holds an original block (such as
`thinking`) is written back as that block; consecutive messages of one role are merged and
`tool` messages sent as `user`, as the API wants; system messages become `system`. Anything
without a counterpart (other structured data) is written as JSON text. OpenAI has no place for
reasoning, so `thinking` / `thoughts` / `reasoning*` structured blocks are left out there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import IO, Any

from chatadmin.models import Message, Thread

REASONING = ("thinking", "redacted_thinking", "thoughts", "reasoning", "reasoning_recap")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


async def conversation_line(
    fmt: str, thread: Thread, messages: AsyncIterator[Message], out: IO[str]
) -> None:
    """Write one thread as one JSON line, streaming its messages."""
    out.write(f'{{"id":{_json(thread.thread_id)},"title":{_json(thread.title)},"messages":[')
    first = True

    def emit(item: dict) -> None:
        nonlocal first
        out.write(("" if first else ",") + _json(item))
        first = False

    if fmt == "openai":
        async for m in messages:
            for item in openai_messages(m):
                emit(item)
        out.write("]}\n")
        return
    system: list[str] = []
    pending: dict | None = None
    async for m in messages:
        if m.role == "system":
            system.append(m.text)
            continue
        role = "assistant" if m.role == "assistant" else "user"
        content = anthropic_blocks(m)
        if pending is not None and pending["role"] == role:
            pending["content"] += content
            continue
        if pending is not None:
            emit(pending)
        pending = {"role": role, "content": content}
    if pending is not None:
        emit(pending)
    out.write("]")
    if system:
        out.write(f',"system":{_json(chr(10).join(system))}')
    out.write("}\n")


def _cited(b) -> str:
    source = b.title or b.url or ""
    return f"> {b.cited_text}" + (f"\n> — {source}" if source else "")


def openai_messages(m: Message) -> list[dict]:
    """One of our messages as OpenAI messages (tool results are messages of their own)."""
    texts: list[str] = []
    images: list[dict] = []
    calls: list[dict] = []
    results: list[dict] = []
    for b in m.content:
        if b.type == "text":
            texts.append(b.text)
        elif b.type == "citation":
            texts.append(_cited(b))
        elif b.type == "image_ref":
            images.append({"type": "image_url", "image_url": {"url": b.url}})
        elif b.type == "tool_use":
            calls.append(
                {
                    "id": b.id,
                    "type": "function",
                    "function": {"name": b.name, "arguments": _json(b.input)},
                }
            )
        elif b.type == "tool_result":
            body = (
                b.content
                if isinstance(b.content, str)
                else _json([c.model_dump(exclude_none=True) for c in b.content])
            )
            results.append({"role": "tool", "tool_call_id": b.tool_use_id, "content": body})
        elif b.type == "structured_data" and (b.name or "") not in REASONING:
            texts.append(_json(b.data))
    text = "\n\n".join(t for t in texts if t)
    out = list(results)
    if m.role == "tool" and not text and not images:
        return out
    role = "user" if m.role == "tool" else m.role
    if text or images or calls or not results:
        msg: dict[str, Any] = {"role": role}
        if images:
            msg["content"] = ([{"type": "text", "text": text}] if text else []) + images
        else:
            msg["content"] = text if text or not calls else None
        if calls and role == "assistant":
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def anthropic_blocks(m: Message) -> list[dict]:
    """One of our messages' blocks as Anthropic content blocks."""
    out: list[dict] = []
    for b in m.content:
        if b.type == "text":
            out.append({"type": "text", "text": b.text})
        elif b.type == "citation":
            out.append({"type": "text", "text": _cited(b)})
        elif b.type == "image_ref":
            out.append({"type": "image", "source": {"type": "url", "url": b.url}})
        elif b.type == "tool_use":
            out.append({"type": "tool_use", "id": b.id, "name": b.name, "input": b.input})
        elif b.type == "tool_result":
            content: Any = b.content
            if not isinstance(content, str):
                content = [
                    {"type": "text", "text": c.text or ""}
                    if c.type == "text"
                    else {"type": "image", "source": {"type": "url", "url": c.url or ""}}
                    for c in content
                ]
            out.append(
                {
                    "type": "tool_result",
                    "tool_use_id": b.tool_use_id,
                    "content": content,
                    "is_error": b.is_error,
                }
            )
        elif isinstance(b.data, dict) and b.data.get("type") == b.name:
            out.append(dict(b.data))  # an original block kept whole (thinking, ...)
        else:
            out.append({"type": "text", "text": _json(b.data)})
    return out or [{"type": "text", "text": ""}]
