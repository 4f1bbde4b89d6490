"""`chatadmin.background`: a loop is asked to end between its rounds, never inside one (a PyMongo
operation must not be cancelled); only one still running after the grace is cancelled."""

from __future__ import annotations

import asyncio

from chatadmin import background


async def test_a_loop_ends_at_its_next_pause_and_its_round_is_not_cancelled():
    rounds, in_round = [], asyncio.Event()

    async def loop():
        while True:
            in_round.set()
            await asyncio.sleep(0.2)  # an operation: stop() must let it end
            rounds.append("done")
            await background.pause(60)

    task = asyncio.create_task(loop())
    await in_round.wait()
    started = asyncio.get_running_loop().time()
    await background.stop([task])
    assert rounds == ["done"], "the round in progress ran to its end"
    assert task.cancelled()
    assert asyncio.get_running_loop().time() - started < 2, "no wait for the 60 s pause"


async def test_a_loop_past_the_grace_is_cancelled(monkeypatch):
    monkeypatch.setattr(background, "STOP_GRACE_S", 0.1)

    async def stuck():
        await asyncio.sleep(60)  # a round that does not end by itself

    task = asyncio.create_task(stuck())
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    await background.stop([task])
    assert task.cancelled()
    assert asyncio.get_running_loop().time() - started < 2


async def test_stopping_says_so_inside_a_round_once_asked():
    seen, asked = [], asyncio.Event()

    async def loop():
        await asked.wait()
        seen.append(background.stopping())
        await background.pause(60)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    assert not seen
    stopper = asyncio.create_task(background.stop([task]))
    await asyncio.sleep(0.01)
    asked.set()
    await stopper
    assert seen == [True]
