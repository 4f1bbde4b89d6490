"""Anthropic Messages conversations: request bodies (`system` + `messages`), response objects,
recorded request/response exchanges, and Claude Code SDK transcripts.

Content is a string or blocks, kept as they are: `text` (its `citations` become `citation`
blocks), `tool_use` / `server_tool_use` (`tool_use`), `tool_result` and server-tool results such
as `web_search_tool_result` (`tool_result`, linked by `tool_use_id`), `thinking` and any other
type (`structured_data` holding the block itself). Keys our blocks have no field for (`caller`,
timestamps, the original type) are kept in `metadata.source.block_extras`, by block index. A
response's `content` is the assistant turn (a streamed response is assembled from its events).
Recorded exchanges that repeat a growing history are one conversation: the last request's
messages plus its response. These sources carry no conversation id (unless one is given as `id`
or `metadata.thread_id`), so the thread id is a hash of the conversation's first request.
"""

from __future__ import annotations

import json
from typing import Any

from chatadmin.transfer.formats.common import (
    Bad,
    Context,
    Conversation,
    Failed,
    Ids,
    Position,
    Record,
    canonical,
    citation,
    client_id,
    compact,
    digest,
    first_user_text,
    guarded,
    image_block,
    image_url,
    role_of,
    source_id,
    structured,
    text_block,
    text_of,
    title,
    tool_result,
    tool_use,
)

NAME = "anthropic"
TOOL_USES = ("tool_use", "server_tool_use", "mcp_tool_use")
TURN_TYPES = ("system", "assistant", "user", "result")
BLOCK_KEYS = {
    "text": {"type", "text", "citations"},
    "tool_use": {"id", "name", "input"},  # and "type" when it is the plain one
    "tool_result": {"tool_use_id", "content", "is_error"},
}


# -- shape ----------------------------------------------------------------------------------------


def is_exchange(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("request"), dict)
        and isinstance(value["request"].get("body"), dict)
        and isinstance(value["request"]["body"].get("messages"), list)
    )


def is_turn(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") in TURN_TYPES
        and ("message" in value or "session_id" in value or value.get("type") == "result")
    )


def is_response(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "message"
        and value.get("role") == "assistant"
        and isinstance(value.get("content"), list)
    )


def looks_like(value: Any) -> bool:
    """Anthropic rather than OpenAI: a system field, block types, or one of the wrappers."""
    if is_exchange(value):
        return "/chat/completions" not in text_of(value["request"].get("url"))
    if is_turn(value) or is_response(value):
        return True
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        return False
    if "system" in value:
        return True
    for msg in value["messages"]:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result", "thinking")
            for b in content
        ):
            return True
    return False


# -- blocks ---------------------------------------------------------------------------------------


def blocks(content: Any) -> tuple[list[dict], dict]:
    """Our blocks for Messages-API content, and the extra keys of each (by our block index)."""
    if isinstance(content, str):
        return [text_block(content)], {}
    out: list[dict] = []
    extras: dict[str, dict] = {}
    for block in content if isinstance(content, list) else []:
        if isinstance(block, str):
            out.append(text_block(block))
            continue
        if not isinstance(block, dict):
            out.append(structured("block", block))
            continue
        kind = text_of(block.get("type"))
        at = len(out)
        if kind == "text":
            out.append(text_block(block.get("text")))
            out += [_citation(c) for c in block.get("citations") or [] if isinstance(c, dict)]
            known = BLOCK_KEYS["text"]
        elif kind in TOOL_USES:
            out.append(tool_use(block.get("id"), block.get("name"), block.get("input") or {}))
            known = BLOCK_KEYS["tool_use"] | ({"type"} if kind == "tool_use" else set())
        elif kind == "tool_result" or (kind.endswith("_tool_result") and "tool_use_id" in block):
            result = tool_result(
                block.get("tool_use_id"), block.get("content"), block.get("is_error")
            )
            out.append(result)
            known = BLOCK_KEYS["tool_result"] | ({"type"} if kind == "tool_result" else set())
        elif kind == "image" and image_url(block):
            source = block.get("source") if isinstance(block.get("source"), dict) else {}
            out.append(image_block(image_url(block), media_type=source.get("media_type")))
            known = {"type", "source"}
        elif kind == "image":
            source = block.get("source") if isinstance(block.get("source"), dict) else {}
            info = {
                "type": "image",
                "media_type": source.get("media_type"),
                "omitted": "inline data",
            }
            out.append(structured("image", info))
            known = set(block)
        else:  # thinking, redacted_thinking, document, token_budget, voice_note, unknown types
            out.append(structured(kind or "block", block))
            known = set(block)
        extra = {k: v for k, v in block.items() if k not in known}
        if extra:
            extras[str(at)] = extra
    return out, extras


def _citation(c: dict) -> dict:
    location = {k: v for k, v in c.items() if k not in ("cited_text", "title", "url")}
    return citation(
        c.get("cited_text"),
        title_=c.get("title") or c.get("document_title"),
        url=c.get("url"),
        location=location,
    )


def usage(meta: Any, model: Any = None) -> dict | None:
    """`ai_metadata` from a model name and a usage object."""
    meta = meta if isinstance(meta, dict) else {}
    found = {"model": model[:200] if isinstance(model, str) and model else None}
    for ours, theirs in (
        ("input_tokens", ("input_tokens", "prompt_tokens")),
        ("output_tokens", ("output_tokens", "completion_tokens")),
        ("total_tokens", ("total_tokens",)),
    ):
        value = next((meta[k] for k in theirs if k in meta), None)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            found[ours] = value
    found = compact(found)
    return found or None


# -- conversations --------------------------------------------------------------------------------


def conversations(items, ctx: Context):
    chain: list = []  # [first body, last exchange, position]
    turns: list = []  # Claude Code records of one session, and the first one's position
    for item in items:
        if isinstance(item, Failed):
            yield item
            continue
        value = item.value
        if is_exchange(value) and chain and _continues(chain[1], value):
            chain[1] = value
            continue
        if chain:
            yield from guarded(chain[2], _from_chain, chain, ctx)
            chain = []
        if is_turn(value):
            if turns and value.get("type") == "system" and len(turns) > 1:
                yield from guarded(turns[0][1], _from_turns, turns, ctx)
                turns = []
            turns.append((value, item.position))
            if value.get("type") == "result":
                yield from guarded(turns[0][1], _from_turns, turns, ctx)
                turns = []
            continue
        if turns:
            yield from guarded(turns[0][1], _from_turns, turns, ctx)
            turns = []
        if is_exchange(value):
            chain = [value["request"]["body"], value, item.position]
        else:
            yield from guarded(item.position, _from_value, value, item.position, ctx)
    if chain:
        yield from guarded(chain[2], _from_chain, chain, ctx)
    if turns:
        yield from guarded(turns[0][1], _from_turns, turns, ctx)


def _continues(previous: dict, value: dict) -> bool:
    before = previous["request"]["body"]["messages"]
    after = value["request"]["body"]["messages"]
    return (
        bool(before and after)
        and len(after) > len(before)
        and canonical(after[0]) == canonical(before[0])
    )


def _from_chain(chain: list, ctx: Context) -> Conversation:
    first, last, position = chain
    response = _response_of(last.get("response"))
    return from_body(last["request"]["body"], position, ctx, response=response, key=first)


def _response_of(response: Any) -> dict | None:
    body = response.get("body") if isinstance(response, dict) else None
    if isinstance(body, str):
        return assemble_sse(body)
    return body if is_response(body) else None


def _from_value(value: Any, position: Position, ctx: Context) -> Conversation:
    if is_response(value):
        return from_body({"messages": []}, position, ctx, response=value, key=value)
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        raise Bad("an Anthropic conversation must be an object with a messages array")
    return from_body(value, position, ctx, response=_response_of({"body": value.get("response")}))


def from_body(
    body: dict, position: Position, ctx: Context, *, response: dict | None = None, key: Any = None
) -> Conversation:
    """A conversation from a request body (and the response to it)."""
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    own = source_id(body.get("id")) or source_id(meta.get("thread_id"))
    thread_id = client_id(NAME, own or digest(key if key is not None else body))
    conv = Conversation(position, thread_id, owner=ctx.user_id)
    ids = Ids(thread_id)
    model = body.get("model")
    system = body.get("system")
    if system:
        found, extras = blocks(system)
        conv.messages.append(_record(ids(None, "system"), "system", found, extras, "system"))
    for n, msg in enumerate(body["messages"]):
        if not isinstance(msg, dict):
            raise Bad(f"messages[{n}] is not an object")
        found, extras = blocks(msg.get("content"))
        conv.messages.append(
            _record(ids(None, n), role_of(msg.get("role")), found, extras, f"messages[{n}]")
        )
    if response:
        found, extras = blocks(response.get("content"))
        rec = _record(ids(response.get("id"), "response"), "assistant", found, extras, "response")
        ai = usage(response.get("usage"), response.get("model") or model)
        if ai:
            rec.data["ai_metadata"] = ai
        rec.data["metadata"]["source"].update(
            compact(
                {"id": source_id(response.get("id")), "stop_reason": response.get("stop_reason")}
            )
        )
        conv.messages.append(rec)
    kept = {k: v for k, v in body.items() if k not in ("messages", "system", "response")}
    conv.thread = {
        "user_id": ctx.user_id,
        "title": title(body.get("title") or first_user_text(conv)[:80]),
        "initial_source": f"import:{NAME}",
        "metadata": {"source": {"format": NAME, "id": own, "request": kept}},
    }
    return conv


def _record(mid: str, role: str, found: list, extras: dict, where: str) -> Record:
    source = compact({"format": NAME, "block_extras": extras or None})
    return Record(
        mid,
        {"role": role, "content": found or [text_block("")], "metadata": {"source": source}},
        where,
    )


def _from_turns(turns: list, ctx: Context) -> Conversation:
    """A Claude Code SDK transcript: system, assistant and user records, and a result."""
    records = [t[0] for t in turns]
    session = next((source_id(r.get("session_id")) for r in records if r.get("session_id")), None)
    key = session or digest(records)
    thread_id = client_id(NAME, key)
    conv = Conversation(turns[0][1], thread_id, owner=ctx.user_id)
    ids = Ids(thread_id)
    extra: dict[str, Any] = {}
    for n, (record, _pos) in enumerate(turns):
        kind = record.get("type")
        if kind in ("system", "result"):
            extra[kind] = {k: v for k, v in record.items() if k != "type"}
            continue
        msg = record.get("message") if isinstance(record.get("message"), dict) else {}
        found, extras = blocks(msg.get("content"))
        rec = _record(
            ids(msg.get("id"), n), role_of(msg.get("role") or kind), found, extras, f"record {n}"
        )
        ai = usage(msg.get("usage"), msg.get("model")) if rec.data["role"] == "assistant" else None
        if ai:
            rec.data["ai_metadata"] = ai
        conv.messages.append(rec)
    if not conv.messages:
        raise Bad("the transcript has no assistant or user records")
    conv.thread = {
        "user_id": ctx.user_id,
        "title": title(first_user_text(conv)[:80], "Claude Code session"),
        "initial_source": f"import:{NAME}",
        "metadata": {"source": {"format": NAME, "id": session, "transcript": extra}},
    }
    return conv


def assemble_sse(text: str) -> dict | None:
    """The message a streamed (server-sent events) response adds up to."""
    message: dict | None = None
    content: dict[int, dict] = {}
    partial: dict[int, str] = {}
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        try:
            event = json.loads(line[5:])
        except ValueError:
            continue
        kind = event.get("type") if isinstance(event, dict) else None
        index = event.get("index") if isinstance(event, dict) else None
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = dict(event["message"])
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            content[index] = dict(event["content_block"])
        elif kind == "content_block_delta" and index in content:
            _apply(content[index], partial, index, event.get("delta") or {})
        elif kind == "message_delta" and message is not None:
            message.update(event.get("delta") or {})
            if isinstance(event.get("usage"), dict):
                message["usage"] = {**(message.get("usage") or {}), **event["usage"]}
    if message is None:
        return None
    for index, raw in partial.items():
        try:
            content[index]["input"] = json.loads(raw) if raw else {}
        except ValueError:
            content[index]["input"] = {"arguments": raw}
    message["content"] = [content[i] for i in sorted(k for k in content if isinstance(k, int))]
    return message


def _apply(block: dict, partial: dict, index: int, delta: dict) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = text_of(block.get("text")) + text_of(delta.get("text"))
    elif kind == "input_json_delta":
        partial[index] = partial.get(index, "") + text_of(delta.get("partial_json"))
    elif kind == "thinking_delta":
        block["thinking"] = text_of(block.get("thinking")) + text_of(delta.get("thinking"))
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature")
    elif kind == "citations_delta":
        block.setdefault("citations", []).append(delta.get("citation"))
