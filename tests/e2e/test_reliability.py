"""The reliability suite of `bench/reliability.py` (issue 11), short: the same scenarios, imported
from there, with small counts. `manage.py runserver --workers 2` on a server of the session's
kind and a `redis-server`, all started here on free ports, under a load of message events with
client timeouts, resends and duplicates, while a worker is killed, the database is killed and
frozen, Redis is killed, or hostile requests are mixed in. Each scenario's report must show no
difference between what was sent, acknowledged and stored, counters in step, no 5xx but 503 and
no request past its deadline (the report is the assertion message).

Full size: `.venv/bin/python bench/reliability.py --messages 100000` (see its docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import replace

import pytest
from pymongo import MongoClient

from bench.reliability import (
    SCENARIOS,
    Options,
    Report,
    Stack,
    prepare,
    scenario_bad_input,
    scenario_database,
    scenario_load,
    scenario_redis,
    scenario_worker_kill,
)
from chatadmin import taskdump
from chatadmin.services import repair
from chatadmin.testservers import selected_server

SHORT = Options(
    server=selected_server(),
    messages=800,
    clients=8,
    batch=(20, 60),
    deadline_s=12.0,
    outage_s=2.0,
    kills=1,
    hostile_step=3,
    time_limit_s=40.0,
)


# A scenario's own bounds: the load stops at `limit_s`, the spool gets 30 s more, the repairer a
# deadline and a lease; past them the scenario reports what it saw. `held` allows all of that
# (a busy machine), and the test's timeout allows `held`.
HELD_S = SHORT.limit_s + 30 + SHORT.deadline_s + repair.LEASE_S + 40
pytestmark = pytest.mark.timeout(HELD_S + 60)


@pytest.fixture(autouse=True)
def clean():
    """These tests use servers and a database of their own, not the session's."""
    yield


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One durable database, Redis and two-worker app for every scenario (the database one, which
    kills the server, runs last)."""
    with Stack(
        SHORT.server, tmp_path_factory.mktemp("reliability"), deadline_s=SHORT.deadline_s
    ) as started:
        prepare(started, SCENARIOS)
        yield started


async def held(scenario) -> Report:
    """A scenario's report, within the short run's hard limit."""
    report = await asyncio.wait_for(scenario, HELD_S)
    print(report.render())
    return report


def told(report: Report, stack: Stack) -> str:
    """The report, and on a failure the app's log lines that are not INFO."""
    if report.ok:
        return report.render()
    lines = [line for line in stack.app.log().splitlines() if " INFO " not in line]
    return (
        report.render()
        + f"\n-- the database server, pinged now on a new connection: {direct_ping(stack)}"
        + "\n-- app log, last lines --\n"
        + "\n".join(lines[-80:])
        + "\n-- what the app workers' tasks wait on now --\n"
        + task_dumps(stack)
    )


def task_dumps(stack: Stack) -> str:
    """Each app worker's asyncio tasks and the awaits they are suspended in (SIGUSR2)."""
    before = len(stack.app.log())
    for pid in stack.app.worker_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, taskdump.SIGNAL)
    time.sleep(2)
    return stack.app.log()[before:][-20_000:]


def direct_ping(stack: Stack) -> str:
    """Whether the database server answers a fresh client (the app's pool aside), and how fast."""
    started = time.monotonic()
    try:
        with MongoClient(stack.uri, serverSelectionTimeoutMS=5000, socketTimeoutMS=5000) as c:
            c.admin.command("ping")
        return f"answered in {time.monotonic() - started:.2f} s"
    except Exception as exc:  # a report line, whatever went wrong
        return f"no answer after {time.monotonic() - started:.2f} s ({type(exc).__name__})"


async def test_a_load_with_retries_stores_every_event_once_with_counters_in_step(stack):
    report = await held(scenario_load(stack, SHORT))
    assert report.ok, told(report, stack)


async def test_a_killed_worker_loses_no_acknowledged_event_and_keeps_seqs_and_counters(stack):
    report = await held(scenario_worker_kill(stack, replace(SHORT, messages=600)))
    assert report.ok, told(report, stack)


async def test_without_redis_ingest_goes_on_limits_fail_open_and_all_recovers_unrestarted(stack):
    report = await held(scenario_redis(stack, replace(SHORT, messages=500)))
    assert report.ok, told(report, stack)


async def test_hostile_requests_under_load_get_their_4xx_and_change_nothing(stack):
    report = await held(scenario_bad_input(stack, replace(SHORT, messages=500)))
    assert report.ok, told(report, stack)


async def test_a_killed_then_frozen_database_is_answered_in_time_and_loses_nothing(
    stack,
):
    report = await held(scenario_database(stack, replace(SHORT, messages=400)))
    assert report.ok, told(report, stack)
