"""`--format auto`: the format recognised from the shape of the first items of a file.

Most shapes are distinctive (`mapping` is ChatGPT, `chat_messages` Claude, `history.messages`
Open WebUI, `conversationId` LibreChat, `{type, id, data}` native). A bare `{"messages": [...]}`
is OpenAI unless something says Anthropic (a `system` field, `tool_use`/`tool_result`/`thinking`
blocks, a recorded `/v1/messages` exchange); seed 003's files name a `conversation_id` or carry
its message fields.
"""

from __future__ import annotations

from chatadmin.transfer.formats import (
    anthropic,
    chatgpt,
    claude,
    folder,
    librechat,
    native,
    openai,
    openwebui,
)
from chatadmin.transfer.formats.common import Item

PEEK = 5  # items looked at


def detect(items: list[Item]) -> str | None:
    """The name of the first format that a peeked item has the shape of, else None."""
    for item in items[:PEEK]:
        value = item.value
        if native.looks_like(value):
            return native.NAME
        if chatgpt.looks_like(value):
            return chatgpt.NAME
        if claude.looks_like(value):
            return claude.NAME
        if openwebui.looks_like(value):
            return openwebui.NAME
        if librechat.looks_like(value, item.position):
            return librechat.NAME
        if folder.looks_like(value):
            return folder.NAME
        if anthropic.looks_like(value):
            return anthropic.NAME
        if openai.looks_like(value):
            return openai.NAME
    return None
