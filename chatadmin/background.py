"""The app's background loops (sweeper, repairer, spool replay) and how they are stopped.

PyMongo's async driver may turn a cancellation that arrives during an operation into a
PyMongoError (an "operation cancelled" AutoReconnect). A loop that logs database errors and goes
on would then swallow its own shutdown and keep the lifespan waiting forever, so every loop asks
`stopping()` in its error branch, and `stop()` cancels again until each task has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

log = logging.getLogger("chatadmin.background")

STOP_ROUND_S = 1.0


def stopping() -> bool:
    """Whether the current task has been asked to stop (re-raise rather than go on)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stop(tasks: Iterable[asyncio.Task]) -> None:
    """Cancel `tasks` and wait until every one has ended, cancelling again any that lingers."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=STOP_ROUND_S)
        for task in done:
            with contextlib.suppress(asyncio.CancelledError):
                if task.exception() is not None:
                    log.warning("background task %s ended with %r", task, task.exception())
