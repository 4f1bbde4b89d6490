"""Message text as HTML: Markdown (as LLMs write it) rendered by markdown-it-py, then cleaned
by an allow-list sanitiser (nh3, the Rust `ammonia`).

Two layers, so that neither alone has to be right: the parser escapes raw HTML (`html=False`)
and refuses unsafe link targets, and the sanitiser keeps only the tags and attributes below,
links to `http`, `https` and `mailto` only, with `rel="noopener noreferrer"`. Images are shown
as links unless `CHATADMIN_MARKDOWN_IMAGES` allows them: an image tag would make every staff
browser fetch a URL chosen by whoever wrote the message.
"""

from __future__ import annotations

import functools
import re

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

SCHEMES = {"http", "https", "mailto"}
TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "ol": {"start"}, "th": {"style"},
              "td": {"style"}, "img": {"src", "alt", "title"}}  # fmt: skip


ALIGN = ("text-align:left", "text-align:center", "text-align:right")


def _filter(tag: str, attribute: str, value: str) -> str | None:
    """Keep only a code block's `language-x` class and a table cell's alignment."""
    if attribute == "class":
        return value if value.startswith("language-") and value[9:].isidentifier() else None
    if attribute == "style":
        return value if value in ALIGN else None
    return value


def _image_as_link(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    return f'<a href="{escape(src)}">{escape("image: " + alt)}</a>'


@functools.cache
def _parser(images: bool) -> MarkdownIt:
    # `breaks`: a single newline is a line break, as chat UIs show what people and models write.
    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "typographer": False})
    md.enable(["table", "strikethrough"])
    if not images:
        md.add_render_rule("image", _image_as_link)
    return md


def render(text: str, *, images: bool = False) -> Markup:
    """Safe HTML for a message's Markdown text."""
    html = _parser(images).render(text or "")
    tags = TAGS | {"img"} if images else TAGS
    cleaned = nh3.clean(
        html,
        tags=tags,
        attributes=ATTRIBUTES,
        attribute_filter=_filter,
        url_schemes=SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
        url_relative="deny",  # no links into our own pages (a GET there acts as the reader)
    )
    return Markup(cleaned)


# -- writing Markdown (exports): what a reader's Markdown viewer must not run ---------------

_LINK = re.compile(r"(\]\(\s*<?)([^)\s>]*)")
_REF = re.compile(r"^(\s{0,3}\[[^\]]+\]:\s*<?)(\S+)", re.MULTILINE)


def _safe_target(match: re.Match) -> str:
    target = match.group(2)
    scheme = target.split(":", 1)[0].lower() if ":" in target else ""
    if scheme and scheme not in SCHEMES:
        target = "#unsafe-link-removed"
    return match.group(1) + target


def safe_text(text: str) -> str:
    """Markdown text with raw HTML escaped and links to other schemes than http(s)/mailto
    replaced, so that a viewer of the exported file runs nothing."""
    text = (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _REF.sub(_safe_target, _LINK.sub(_safe_target, text))


def _ticks(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text or "")), default=0)


def fence(text: str, lang: str = "") -> str:
    """A fenced code block that no backtick run inside `text` can close."""
    bar = "`" * max(3, _ticks(text) + 1)
    return f"{bar}{lang}\n{text}\n{bar}"


def code_span(text: str) -> str:
    """An inline code span that holds any text (newlines folded)."""
    text = " ".join(str(text or "").split())
    bar = "`" * (_ticks(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{bar}{pad}{text}{pad}{bar}"
