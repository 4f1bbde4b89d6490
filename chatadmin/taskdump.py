"""What a worker's event loop is waiting on: on SIGUSR2 a worker of `manage.py runserver` writes
every asyncio task, with the chain of awaits it is suspended in, to its log (stderr).

SIGUSR1 (faulthandler, `chatadmin.server`) shows threads, and a worker whose requests hang
shows one thread idle in its selector; its tasks say which await each request is stuck in
(a pool's wait queue, a socket read, a lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import Any, TextIO

SIGNAL = signal.SIGUSR2


def await_chain(task: asyncio.Task) -> list[str]:
    """`file:line in function` of each coroutine or generator in the chain `task` is suspended
    in, outermost first, ending with the future the innermost one waits on."""
    lines: list[str] = []
    awaitable: Any = None if task.done() else task.get_coro()
    seen = 0
    while awaitable is not None and seen < 200:
        seen += 1
        frame = next(
            (getattr(awaitable, a) for a in ("cr_frame", "gi_frame", "ag_frame")
             if getattr(awaitable, a, None) is not None),
            None,
        )  # fmt: skip
        if frame is None:
            waiter = getattr(task, "_fut_waiter", None)  # what a Future's iterator hides
            lines.append(f"waits on {_short(waiter if waiter is not None else awaitable)}")
            break
        code = frame.f_code
        lines.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        awaitable = next(
            (getattr(awaitable, a) for a in ("cr_await", "gi_yieldfrom", "ag_await")
             if getattr(awaitable, a, None) is not None),
            None,
        )  # fmt: skip
    return lines


def _short(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 200 else text[:197] + "..."


def dump(file: TextIO | None = None) -> int:
    """Write every task of the running loop and where it waits, in one write (workers share
    one log); the number of tasks."""
    tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    lines = [f"--- {len(tasks)} asyncio tasks ---"]
    for task in tasks:
        lines.append(f"task {task.get_name()} ({'done' if task.done() else 'pending'}):")
        lines += [f"    {line}" for line in await_chain(task)]
    lines.append("--- end of tasks ---")
    text = "\n".join(lines) + "\n"
    if file is None:
        os.write(sys.stderr.fileno(), text.encode("utf-8", "replace"))
    else:
        file.write(text)
        file.flush()
    return len(tasks)


def install() -> bool:
    """Dump the tasks on SIGUSR2, where the running loop can take signals (the main thread of a
    worker process; not an app run in a test's thread). Whether it was installed."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
        loop.add_signal_handler(SIGNAL, dump)
        return True
    return False


def uninstall() -> None:
    """Stop dumping on SIGUSR2 (the default action again)."""
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
        asyncio.get_running_loop().remove_signal_handler(SIGNAL)
