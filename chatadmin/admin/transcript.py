"""What the conversation page shows of each message: blocks cut to a bounded size (a page of
100 messages of 1 MB each would be 100 MB of HTML), text blocks as sanitised Markdown, and
the full text of one message on request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from markupsafe import Markup

from chatadmin import markdown as md
from chatadmin.models import Message, Thread
from chatadmin.models.blocks import (
    StructuredDataBlock,
    TextBlock,
    ToolResultBlock,
    ToolResultContent,
    ToolUseBlock,
)

CUT = "\n… (cut: show all)"


def pretty(value: Any) -> str:
    """Pretty JSON for display (the template escapes it)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=False)


def _cut(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit] + CUT, True)


def clip(message: Message, limit: int) -> tuple[Message, bool]:
    """The message with every block cut to about `limit` characters; True when one was."""
    blocks, any_cut = [], False
    for block in message.content:
        cut = False
        if isinstance(block, TextBlock):
            text, cut = _cut(block.text, limit)
            block = block.model_copy(update={"text": text}) if cut else block
        elif isinstance(block, ToolUseBlock):
            shown, cut = _cut(pretty(block.input), limit)
            block = block.model_copy(update={"input": {"(cut)": shown}}) if cut else block
        elif isinstance(block, ToolResultBlock):
            if isinstance(block.content, str):
                text, cut = _cut(block.content, limit)
                block = block.model_copy(update={"content": text}) if cut else block
            else:
                parts = []
                for part in block.content[:50]:
                    text, c = _cut(part.text or "", limit)
                    cut = cut or c
                    parts.append(part.model_copy(update={"text": text}) if c else part)
                if len(block.content) > 50:
                    cut = True
                    parts.append(ToolResultContent(text=CUT.strip()))
                block = block.model_copy(update={"content": parts}) if cut else block
        elif isinstance(block, StructuredDataBlock):
            shown, cut = _cut(pretty(block.data), limit)
            block = block.model_copy(update={"data": shown, "columns": []}) if cut else block
        any_cut = any_cut or cut
        blocks.append(block)
        if len(blocks) >= 200:  # a message may hold 500 blocks; a page shows 200 of them
            any_cut = any_cut or len(message.content) > len(blocks)
            break
    if not any_cut:
        return message, False
    text, _ = _cut(message.text, limit)
    return message.model_copy(update={"content": blocks, "text": text}), True


def as_html(text: str, images: bool = False) -> Markup:
    """A text block as the page shows it: sanitised Markdown."""
    return md.render(text, images=images)


def full_text(message: Message) -> str:
    """Every block of a message as plain text (the "show all" answer)."""
    parts = []
    for block in message.content:
        if isinstance(block, TextBlock):
            parts.append(block.text)
        else:
            parts.append(pretty(block.model_dump(mode="json")))
    return "\n\n".join(parts)


def _message_markdown(m: Message) -> str:
    lines = [f"## {m.seq} · {m.role} · {m.created_at.isoformat(timespec='seconds')}"]
    for b in m.content:
        if b.type == "text":
            lines += ["", md.safe_text(b.text)]
        elif b.type == "tool_use":
            lines += ["", f"**Tool call** {md.code_span(b.name)} ({md.code_span(b.id)})"]
            lines += ["", md.fence(pretty(b.input), "json")]
        elif b.type == "tool_result":
            body = (
                b.content
                if isinstance(b.content, str)
                else pretty([c.model_dump() for c in b.content])
            )
            flag = " (error)" if b.is_error else ""
            lines += ["", f"**Tool result**{flag} for {md.code_span(b.tool_use_id)}"]
            lines += ["", md.fence(body)]
        elif b.type == "citation":
            source = b.title or b.url or b.source_id or ""
            quoted = md.safe_text(b.cited_text).replace("\n", "\n> ")
            lines += ["", f"> {quoted}", f"> — {md.safe_text(source)}"]
        elif b.type == "image_ref":
            label = md.safe_text(b.alt_text or "image").replace("]", "\\]")
            lines += ["", f"image: {label} {md.code_span(b.url)}"]
        else:
            lines += ["", f"**Data** {md.safe_text(b.name or '')}", "", md.fence(pretty(b.data))]
    if m.analysis:
        lines += ["", f"**Analysis:** {md.safe_text(m.analysis.title)}"]
        lines += [
            f"- {md.safe_text(r.key)}: {md.safe_text(str(r.value))}" for r in m.analysis.result.body
        ]
    if m.feedback:
        comment = md.safe_text(m.feedback.comment or "")
        lines += ["", f"_Feedback: helpful={m.feedback.is_helpful} rating={m.feedback.rating}_"]
        if comment:
            lines += ["", f"> {comment}"]
    return "\n".join(lines) + "\n\n"


async def markdown_export(thread: Thread, cursor) -> AsyncIterator[str]:
    """The transcript as Markdown, one message at a time; nothing in it runs in a viewer."""
    yield (
        f"# {md.safe_text(thread.title)}\n\n"
        f"Thread {md.code_span(thread.thread_id)} · {thread.message_count} messages · "
        f"created {thread.created_at.isoformat()}\n\n"
    )
    async for m in cursor:
        yield _message_markdown(m)
