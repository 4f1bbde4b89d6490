"""The app's background loops (sweeper, repairer, spool replay) and how they are stopped.

A loop waits between its rounds in `pause()`, and `stop()` first asks each loop to end there:
a round is left to finish, since a PyMongo operation must not be cancelled (`chatadmin/db.py`
says why). Only a loop still running after `STOP_GRACE_S` is cancelled. PyMongo's async driver
may turn such a cancellation into a PyMongoError (an "operation cancelled" AutoReconnect); a
loop that logs database errors and goes on would then swallow its own shutdown, so every loop
asks `stopping()` in its error branch, and `stop()` cancels again until each task has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Iterable

log = logging.getLogger("chatadmin.background")

STOP_ROUND_S = 1.0
STOP_GRACE_S = 5.0  # a round's operations end by the client's timeouts well within this
_asked: weakref.WeakKeyDictionary[asyncio.Task, asyncio.Event] = weakref.WeakKeyDictionary()


def _stop_event(task: asyncio.Task) -> asyncio.Event:
    event = _asked.get(task)
    if event is None:
        event = _asked[task] = asyncio.Event()
    return event


async def pause(seconds: float) -> None:
    """The wait between a loop's rounds; raises CancelledError once `stop()` asks the loop to
    end (so that it ends between operations, not inside one)."""
    task = asyncio.current_task()
    event = _stop_event(task) if task is not None else asyncio.Event()
    if not event.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
    if event.is_set():
        raise asyncio.CancelledError


def stopping() -> bool:
    """Whether the current task has been asked to stop (re-raise rather than go on)."""
    task = asyncio.current_task()
    if task is None:
        return False
    return task.cancelling() > 0 or (task in _asked and _asked[task].is_set())


async def stop(tasks: Iterable[asyncio.Task]) -> None:
    """Ask `tasks` to end at their next `pause()`; cancel those that have not after
    `STOP_GRACE_S`, again until every one has ended."""
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        _stop_event(task).set()
    if pending:
        done, pending = await asyncio.wait(pending, timeout=STOP_GRACE_S)
        _report(done)
    while pending:
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=STOP_ROUND_S)
        _report(done)


def _report(done: Iterable[asyncio.Task]) -> None:
    """Log the tasks that ended with an error rather than by being stopped."""
    for task in done:
        with contextlib.suppress(asyncio.CancelledError):
            if task.exception() is not None:
                log.warning("background task %s ended with %r", task, task.exception())
