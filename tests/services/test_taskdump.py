"""`chatadmin.taskdump`: the chain of awaits a suspended task is in, innermost last."""

from __future__ import annotations

import asyncio
import io

from chatadmin import taskdump


async def _inner(event: asyncio.Event) -> None:
    await event.wait()


async def _outer(event: asyncio.Event) -> None:
    await _inner(event)


async def test_a_suspended_task_shows_each_await_down_to_what_it_waits_on():
    event = asyncio.Event()
    task = asyncio.create_task(_outer(event), name="held")
    await asyncio.sleep(0)
    try:
        chain = taskdump.await_chain(task)
        names = [line.rsplit(" in ", 1)[-1] for line in chain[:-1]]
        assert names == ["_outer", "_inner", "wait"], chain
        assert chain[0].startswith(__file__.removesuffix("c")), chain
        assert chain[-1].startswith("waits on <Future pending"), chain

        out = io.StringIO()
        count = taskdump.dump(out)
        text = out.getvalue()
        assert count == len(asyncio.all_tasks()) >= 2
        assert f"--- {count} asyncio tasks ---" in text
        assert "task held (pending):" in text and "in _inner" in text
    finally:
        event.set()
        await task
    assert taskdump.await_chain(task) == [], "a finished coroutine waits on nothing"
