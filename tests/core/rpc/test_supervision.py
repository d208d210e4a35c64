"""Background tasks never die silently: failures are logged with their cause and restarted."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from efs_csi.rpc.supervision import RestartPolicy, supervise


class FailingTwice:
    """A task that fails on its first two runs, then runs until cancelled."""

    def __init__(self) -> None:
        self.runs = 0
        self.running = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= 2:
            raise ValueError(f"boom {self.runs}")
        self.running.set()
        await asyncio.Event().wait()


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RestartPolicy(first_delay_s=0.5, max_delay_s=3)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]


@pytest.mark.asyncio
async def test_a_failing_task_is_logged_with_its_cause_and_restarted_with_backoff() -> None:
    task = FailingTwice()
    delays: list[float] = []

    async def no_wait(seconds: float) -> None:
        delays.append(seconds)

    with capture_logs() as logs:
        supervised = asyncio.create_task(
            supervise(task.run, RestartPolicy(first_delay_s=1, max_delay_s=60), sleep=no_wait))
        await asyncio.wait_for(task.running.wait(), 5)
        supervised.cancel()
        with pytest.raises(asyncio.CancelledError):
            await supervised
    assert task.runs == 3
    assert delays == [1, 2]
    failures = [entry for entry in logs if entry["event"].startswith("background task failed")]
    assert [entry["cause"] for entry in failures] == ["ValueError: boom 1", "ValueError: boom 2"]
    assert all(entry["task"] == "FailingTwice.run" and entry["log_level"] == "error"
               for entry in failures)


@pytest.mark.asyncio
async def test_backoff_starts_over_after_a_long_healthy_run() -> None:
    now = [0.0]
    runs: list[float] = []
    delays: list[float] = []

    async def fails_after_running(length: float) -> None:
        runs.append(now[0])
        now[0] += length
        raise RuntimeError("down")

    lengths = iter([0, 0, 100, 0])

    async def task() -> None:
        length = next(lengths, None)
        if length is None:
            raise asyncio.CancelledError
        await fails_after_running(length)

    async def record(seconds: float) -> None:
        delays.append(seconds)

    with pytest.raises(asyncio.CancelledError):
        await supervise(task, RestartPolicy(first_delay_s=1, max_delay_s=10),
                        clock=lambda: now[0], sleep=record)
    # Two quick failures back off 1, 2; a run longer than the cap resets to 1, then 2.
    assert delays == [1, 2, 1, 2]


@pytest.mark.asyncio
async def test_stopping_cancels_a_task_waiting_to_restart() -> None:
    async def always_fails() -> None:
        raise OSError("port in use")

    waiting = asyncio.Event()

    async def sleep(delay: float) -> None:  # the real sleep, announced
        waiting.set()
        await asyncio.sleep(delay)

    with capture_logs():
        supervised = asyncio.create_task(supervise(
            always_fails, RestartPolicy(first_delay_s=3600, max_delay_s=3600), sleep=sleep))
        await waiting.wait()  # failed once, now waiting an hour to restart
        supervised.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(supervised, 2)


@pytest.mark.asyncio
async def test_a_task_that_returns_is_logged_and_not_restarted() -> None:
    runs = 0

    async def one_shot() -> None:
        nonlocal runs
        runs += 1

    with capture_logs() as logs:
        await supervise(one_shot)
    assert runs == 1
    assert [entry["event"] for entry in logs] == ["background task finished"]
