"""What the product relies on from the async PyMongo driver, and the gap it works around: a
PyMongo operation must not be cancelled from outside (`chatadmin.db.within`)."""

from __future__ import annotations

import asyncio
import sys

import pytest
from pymongo.lock import _async_cond_wait, _async_create_condition, _async_create_lock

from chatadmin.db import read_ahead, within


async def test_a_cancel_during_the_drivers_own_wait_can_leave_its_lock_held_for_good():
    """The wedge of the frozen-database scenario (bench/reliability.py), step by step.

    The driver's server selection holds the topology's lock and waits on its condition through
    `asyncio.wait_for`, which on Python 3.11 runs the wait in a task of its own. When that wait
    times out while another task holds the lock, the inner task queues to take the lock back.
    If the caller is cancelled then, and the other task lets go in the same step, the caller
    leaves first and releases a lock it does not hold ("Lock is not acquired"); the inner task
    then takes the lock, and nobody ever releases it: every later operation waits forever."""
    lock = _async_create_lock()
    condition = _async_create_condition(lock)

    async def selecting() -> None:  # as Topology._select_servers_loop
        async with lock:
            await _async_cond_wait(condition, 0.05)

    caller = asyncio.create_task(selecting())
    await asyncio.sleep(0.01)
    await lock.acquire()  # another task (a monitor's on_change) holds the lock
    await asyncio.sleep(0.1)  # the wait timed out; its inner task waits to take the lock back
    caller.cancel()  # the caller's own deadline (asyncio.wait_for around the operation)
    lock.release()  # and the other task lets go, in the same step
    (outcome,) = await asyncio.gather(caller, return_exceptions=True)
    await asyncio.sleep(0.05)
    if sys.version_info < (3, 12):  # wait_for spawns the inner task
        assert isinstance(outcome, RuntimeError), outcome
        assert lock.locked(), "the lock was expected to stay held (Python 3.11's wait_for)"
    else:  # wait_for waits in the caller's own task: the cancel is clean
        assert isinstance(outcome, asyncio.CancelledError), outcome
        assert not lock.locked()


async def test_within_bounds_the_wait_without_cancelling_the_operation():
    finished = asyncio.Event()

    async def slow() -> str:
        await asyncio.sleep(0.3)
        finished.set()
        return "done"

    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await within(slow(), 0.05)
    assert asyncio.get_running_loop().time() - started < 0.25
    await asyncio.wait_for(finished.wait(), 2)  # it went on to its end
    assert await within(slow(), 2) == "done"

    async def failing() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await within(failing(), 1)


async def test_callers_of_a_slow_ping_share_one(database, monkeypatch):
    started, release = [], asyncio.Event()

    async def slow_ping():
        started.append(1)
        await release.wait()
        return database.info

    monkeypatch.setattr(database, "ping", slow_ping)
    answers = await asyncio.gather(
        *[database.ping_within(0.05) for _ in range(5)], return_exceptions=True
    )
    assert all(isinstance(a, TimeoutError) for a in answers), answers
    assert len(started) == 1, "one ping is out at a time"
    release.set()
    assert await database.ping_within(1) is database.info  # the same ping, answered now
    assert len(started) == 1
    monkeypatch.undo()
    assert await database.ping_within(5) is database.info  # a real ping once that one ended


async def test_read_ahead_hands_over_items_in_order_and_raises_the_sources_error():
    async def source():
        for i in range(5):
            yield i
        raise ValueError("source failed")

    seen = []
    with pytest.raises(ValueError, match="source failed"):
        async for item in read_ahead(source()):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


async def test_a_cancelled_consumer_never_cancels_the_readers_operation():
    """As a streamed download whose client hangs up: anyio cancels the consumer at every await
    of its cancelled scope; the reader's operation runs to its end, then the reader stops."""
    started, finished, closed = [], [], asyncio.Event()

    async def source():
        try:
            for i in range(1000):
                started.append(i)
                await asyncio.sleep(0.05)  # an operation (a cursor's next page)
                finished.append(i)
                yield i
        finally:
            closed.set()

    got, three = [], asyncio.Event()

    async def consume():
        async for item in read_ahead(source()):
            got.append(item)
            if len(got) == 3:
                three.set()

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(three.wait(), 5)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await asyncio.wait_for(closed.wait(), 2)  # the reader ended by itself and closed its source
    assert started == finished, "an operation was cut short"
    assert len(finished) <= len(got) + 3, (finished, got)  # it read little past the stop
