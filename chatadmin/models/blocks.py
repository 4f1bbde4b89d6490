"""Message content blocks: a discriminated union shaped like the Anthropic Messages blocks."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from chatadmin.models.base import Embedded, JsonObject, JsonValue


class TextBlock(Embedded):
    """Plain text."""

    type: Literal["text"] = "text"
    text: str


class ToolUseBlock(Embedded):
    """The model asks for a tool call."""

    type: Literal["tool_use"] = "tool_use"
    id: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=256)
    input: JsonObject = Field(default_factory=dict)


class ToolResultContent(Embedded):
    """One piece of a tool result: text, or an image reference."""

    type: Literal["text", "image_ref"] = "text"
    text: str | None = None
    url: str | None = None
    media_type: str | None = None


class ToolResultBlock(Embedded):
    """The outcome of a tool call, linked to its `tool_use` block by id."""

    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str = Field(min_length=1, max_length=256)
    content: str | list[ToolResultContent] = ""
    is_error: bool = False


class CitationBlock(Embedded):
    """A quoted source."""

    type: Literal["citation"] = "citation"
    cited_text: str
    title: str | None = None
    url: str | None = None
    source_id: str | None = None
    location: JsonObject = Field(default_factory=dict)


class ImageRefBlock(Embedded):
    """A reference to an image stored elsewhere (never the bytes)."""

    type: Literal["image_ref"] = "image_ref"
    url: str = Field(min_length=1, max_length=4096)
    media_type: str | None = None
    alt_text: str | None = None
    width: int | None = Field(default=None, ge=0)
    height: int | None = Field(default=None, ge=0)


class StructuredDataBlock(Embedded):
    """Tabular or structured output, e.g. an analysis result."""

    type: Literal["structured_data"] = "structured_data"
    name: str | None = None
    columns: list[str] = Field(default_factory=list)
    data: JsonValue = Field(default_factory=dict)


Block = Annotated[
    TextBlock
    | ToolUseBlock
    | ToolResultBlock
    | CitationBlock
    | ImageRefBlock
    | StructuredDataBlock,
    Field(discriminator="type"),
]
BLOCK_TYPES = ("text", "tool_use", "tool_result", "citation", "image_ref", "structured_data")
BlockList = TypeAdapter(list[Block])


def coerce_content(content: str | list) -> list:
    """A plain string is one text block."""
    if isinstance(content, str):
        return [TextBlock(text=content)]
    return content


def render_text(blocks: list) -> str:
    """A plain-text rendering of blocks, for full-text search and previews."""
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, TextBlock):
            parts.append(b.text)
        elif isinstance(b, ToolUseBlock):
            parts.append(f"[tool_use {b.name}] {json.dumps(b.input, ensure_ascii=False)}")
        elif isinstance(b, ToolResultBlock):
            body = (
                b.content
                if isinstance(b.content, str)
                else " ".join(c.text or c.url or "" for c in b.content)
            )
            parts.append(f"[tool_result{' error' if b.is_error else ''}] {body}")
        elif isinstance(b, CitationBlock):
            parts.append(f"[citation {b.title or b.url or ''}] {b.cited_text}")
        elif isinstance(b, ImageRefBlock):
            parts.append(f"[image {b.alt_text or b.url}]")
        elif isinstance(b, StructuredDataBlock):
            parts.append(f"[data {b.name or ''}]")
    return "\n".join(p for p in parts if p)
