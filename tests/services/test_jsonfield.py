"""Free-form objects round-trip exactly, even with `$`-prefixed, dotted and NUL keys."""

import pytest
from pydantic import TypeAdapter, ValidationError

from chatadmin.models import Message, Thread
from chatadmin.models.jsonfield import (
    MAX_DEPTH,
    ClientJsonObject,
    depth,
    escape_keys,
    unescape_keys,
)
from chatadmin.services import executions, messages, threads, users

pytestmark = pytest.mark.usefixtures("database")

HOSTILE = {
    "$where": "sleep(1000)",
    "a.b": {"$gt": "", "c.d": [{"$ne": None}, {"x.y": 1}]},
    "nul\x00key": "v",
    "plain": {"nested": [1, 2.5, "three", None, True]},
    "ünïcødé 🔑": "✓",
}


def test_escape_round_trip_and_no_operator_keys_remain():
    stored = escape_keys(HOSTILE)
    assert unescape_keys(stored) == HOSTILE
    keys = []
    stack = [stored]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            keys += list(item)
            stack += list(item.values())
        elif isinstance(item, list):
            stack += item
    assert keys and not any(k.startswith("$") or "." in k or "\x00" in k for k in keys)


def test_depth_is_measured_without_recursion():
    deep: dict = {}
    cursor = deep
    for _ in range(10_000):
        cursor["a"] = {}
        cursor = cursor["a"]
    assert depth(deep) > MAX_DEPTH
    assert depth({"a": [1, {"b": 2}]}) == 3
    with pytest.raises(ValidationError):
        TypeAdapter(ClientJsonObject).validate_python(deep)


def test_client_keys_may_not_use_the_escape_characters():
    with pytest.raises(ValidationError):
        TypeAdapter(ClientJsonObject).validate_python({"bad\ue001": 1})


async def test_documents_store_escaped_keys_and_read_back_the_originals(database):
    t = await threads.create_thread("o", "u", metadata=HOSTILE)
    raw = await database.db["chat_sessions"].find_one({"thread_id": t.thread_id})
    assert "$where" not in raw["metadata"] and "\ue001where" in raw["metadata"]
    assert (await threads.get_thread("o", t.thread_id)).metadata == HOSTILE
    m = await messages.append_message(
        "o", t.thread_id, role="assistant",
        content=[{"type": "tool_use", "id": "t1", "name": "q", "input": HOSTILE}],
        metadata={"$set": {"x": 1}},
    )  # fmt: skip
    stored = await Message.find_one({"message_id": m.message_id})
    assert stored.content[0].input == HOSTILE and stored.metadata == {"$set": {"x": 1}}
    assert await Thread.find_one({"metadata.$where": "sleep(1000)"}) is None


async def test_raw_updates_escape_too():
    user, _ = await users.upsert_user("o", "u1", metadata=HOSTILE)
    user, _ = await users.upsert_user("o", "u1", preferences={"$theme": "dark"})
    assert user.metadata == HOSTILE and user.preferences == {"$theme": "dark"}
    run = await executions.create_execution("o", parameters=HOSTILE)
    await executions.transition("o", run.execution_id, "running")
    done = await executions.transition("o", run.execution_id, "success", result=HOSTILE)
    assert done.result == HOSTILE and done.parameters == HOSTILE
    assert (await executions.get_execution("o", run.execution_id)).result == HOSTILE
