"""Executions: pending -> running -> success | failed, atomic against concurrent transitions."""

import asyncio
import itertools

import pytest

from chatadmin.clock import utcnow
from chatadmin.exceptions import Conflict, InvalidTransition, NotFound
from chatadmin.models import Execution
from chatadmin.models.execution import TRANSITIONS
from chatadmin.services import analytics, executions, messages, threads

pytestmark = pytest.mark.usefixtures("database")

STATUSES = ("pending", "running", "success", "failed")
# The one way to reach each status from a new execution.
PATH = {"pending": [], "running": ["running"], "success": ["running", "success"],
        "failed": ["running", "failed"]}  # fmt: skip
ALLOWED = {("pending", "running"), ("running", "success"), ("running", "failed")}


async def _run_in(status: str, org="org-a", **kw) -> Execution:
    run = await executions.create_execution(org, **kw)
    for step in PATH[status]:
        run = await executions.transition(org, run.execution_id, step)
    assert run.status == status
    return run


def test_the_machine_is_exactly_the_documented_one():
    allowed = {(src, dst) for src, targets in TRANSITIONS.items() for dst in targets}
    assert allowed == ALLOWED


@pytest.mark.parametrize(("source", "target"), list(itertools.product(STATUSES, STATUSES)))
async def test_transition_matrix(source, target):
    run = await _run_in(source)
    if (source, target) in ALLOWED:
        moved = await executions.transition("org-a", run.execution_id, target)
        assert moved.status == target
        assert (await executions.get_execution("org-a", run.execution_id)).status == target
    else:
        with pytest.raises(InvalidTransition):
            await executions.transition("org-a", run.execution_id, target)
        stored = await executions.get_execution("org-a", run.execution_id)
        assert stored.status == source
        assert stored.completed_at_ms == run.completed_at_ms
        assert stored.started_at_ms == run.started_at_ms


async def test_unknown_target_status_is_an_invalid_transition():
    run = await _run_in("running")
    with pytest.raises(InvalidTransition):
        await executions.transition("org-a", run.execution_id, "cancelled")
    assert (await executions.get_execution("org-a", run.execution_id)).status == "running"


def test_invalid_transition_is_a_conflict():
    assert issubclass(InvalidTransition, Conflict)


async def test_running_then_success_records_times_and_duration():
    run = await executions.create_execution("org-a", question="q", generated_script="print(1)")
    assert run.status == "pending" and run.started_at is None and run.completed_at is None
    running = await executions.transition("org-a", run.execution_id, "running")
    assert running.started_at_ms >= run.created_at_ms and running.started_at is not None
    assert running.completed_at_ms == 0 and running.execution_ms is None
    await asyncio.sleep(0.03)
    done = await executions.transition(
        "org-a", run.execution_id, "success", result={"rows": 3}, mcp_calls=["lookup"]
    )
    assert done.status == "success"
    assert done.started_at_ms == running.started_at_ms
    assert done.completed_at_ms >= running.started_at_ms + 25
    assert done.execution_ms == done.completed_at_ms - done.started_at_ms
    assert done.result == {"rows": 3} and done.mcp_calls == ["lookup"]
    stored = await executions.get_execution("org-a", run.execution_id)
    assert stored.execution_ms == done.execution_ms and stored.result == {"rows": 3}
    assert stored.completed_at is not None and stored.completed_at >= stored.started_at


async def test_failed_keeps_error_and_an_explicit_execution_ms():
    run = await _run_in("running")
    failed = await executions.transition(
        "org-a", run.execution_id, "failed", error="boom", execution_ms=1234
    )
    assert failed.status == "failed" and failed.error == "boom"
    assert failed.execution_ms == 1234 and failed.completed_at_ms >= failed.started_at_ms


async def test_fields_other_than_results_cannot_be_set_on_a_transition():
    run = await _run_in("running")
    for bad in ({"user_id": "u9"}, {"started_at_ms": 1}, {"result": {}, "thread_id": "x"}):
        with pytest.raises(InvalidTransition):
            await executions.transition("org-a", run.execution_id, "success", **bad)
    stored = await executions.get_execution("org-a", run.execution_id)
    assert stored.status == "running" and stored.user_id is None and stored.result is None


async def test_invalid_result_values_are_refused_before_any_write():
    run = await _run_in("running")
    with pytest.raises(ValueError):  # pydantic ValidationError: result must be an object
        await executions.transition("org-a", run.execution_id, "success", result="not a dict")
    assert (await executions.get_execution("org-a", run.execution_id)).status == "running"


async def test_a_new_execution_may_start_in_any_status_and_ids_are_unique():
    started = await executions.create_execution("org-a", status="running")
    assert started.started_at_ms > 0 and started.completed_at_ms == 0
    done = await executions.create_execution("org-a", status="success", execution_ms=7)
    assert done.started_at_ms > 0 and done.completed_at_ms >= done.started_at_ms
    assert done.execution_ms == 7
    await executions.create_execution("org-a", execution_id="run-1")
    with pytest.raises(Conflict):
        await executions.create_execution("org-a", execution_id="run-1")
    assert await Execution.find({"execution_id": "run-1"}).count() == 1


async def test_other_org_cannot_read_or_move_an_execution():
    run = await executions.create_execution("org-a")
    with pytest.raises(NotFound):
        await executions.get_execution("org-b", run.execution_id)
    with pytest.raises(NotFound):
        await executions.transition("org-b", run.execution_id, "running")
    assert (await executions.get_execution("org-a", run.execution_id)).status == "pending"


async def test_of_two_simultaneous_completions_exactly_one_wins():
    runs = [await _run_in("running", user_id="u1") for _ in range(8)]
    for run in runs:
        results = await asyncio.gather(
            executions.transition("org-a", run.execution_id, "success"),
            executions.transition("org-a", run.execution_id, "failed"),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, Execution)]
        losers = [r for r in results if isinstance(r, InvalidTransition)]
        assert len(winners) == 1 and len(losers) == 1, results
        stored = await executions.get_execution("org-a", run.execution_id)
        assert stored.status == winners[0].status
    day = await analytics.summary("org-a", utcnow(), utcnow())
    assert day.executions_success + day.executions_failed == len(runs)


async def test_of_many_simultaneous_starts_exactly_one_wins():
    run = await executions.create_execution("org-a")
    results = await asyncio.gather(
        *[executions.transition("org-a", run.execution_id, "running") for _ in range(6)],
        return_exceptions=True,
    )
    assert sum(isinstance(r, Execution) for r in results) == 1
    assert sum(isinstance(r, InvalidTransition) for r in results) == 5


async def test_message_execution_status_follows_the_execution():
    t = await threads.create_thread("org-a", "u1")
    msg, _analysis, run = await messages.add_assistant_message_with_analysis(
        "org-a",
        t.thread_id,
        content="running it",
        analysis={"title": "Headcount"},
        execution={"question": "how many?", "generated_script": "print(1)"},
    )
    assert (await messages.get_message("org-a", msg.message_id)).execution_status == "pending"
    await executions.transition("org-a", run.execution_id, "running")
    assert (await messages.get_message("org-a", msg.message_id)).execution_status == "running"
    await executions.transition("org-a", run.execution_id, "failed", error="timeout")
    assert (await messages.get_message("org-a", msg.message_id)).execution_status == "failed"
    with pytest.raises(InvalidTransition):
        await executions.transition("org-a", run.execution_id, "success")
    assert (await messages.get_message("org-a", msg.message_id)).execution_status == "failed"


async def test_analytics_count_successes_failures_and_duration_per_org_and_user():
    now = utcnow()
    for status, ms in (("success", 100), ("success", 200), ("failed", 50)):
        run = await _run_in("running", user_id="u1")
        await executions.transition("org-a", run.execution_id, status, execution_ms=ms)
    other = await _run_in("running", org="org-b", user_id="u1")
    await executions.transition("org-b", other.execution_id, "success", execution_ms=999)
    await _run_in("running", user_id="u2")  # never finished: not counted

    org = await analytics.summary("org-a", now, now)
    assert org.executions_success == 2 and org.executions_failed == 1
    assert org.execution_ms_sum == 350
    user = await analytics.summary("org-a", now, now, user_id="u1")
    assert user.executions_success == 2 and user.executions_failed == 1
    u2 = await analytics.summary("org-a", now, now, user_id="u2")
    assert u2.executions_success == 0 and u2.executions_failed == 0
    assert (await analytics.summary("org-b", now, now)).executions_success == 1
