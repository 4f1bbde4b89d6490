"""One module per import format; each has `NAME`, `looks_like(value)` and
`conversations(items, ctx)`."""

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

MODULES = {
    m.NAME: m for m in (native, chatgpt, claude, openai, anthropic, librechat, openwebui, folder)
}
NAMES = tuple(MODULES)
