"""Watchdog supervision with a fake ``amazon-efs-mount-watchdog`` on PATH.

The fake is a small shell script, because real efs-utils is not installed here: it records
each start (and each SIGTERM it handles) in a file, then exits or sleeps as the test asks.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from efs_csi_node.efs_utils.reaper import ChildRegistry
from efs_csi_node.efs_utils.watchdog import Backoff, WatchdogOptions, supervise_watchdog

FAKE_WATCHDOG = """#!/bin/sh
echo "start $$" >> "$WATCHDOG_RECORD"
case "$WATCHDOG_MODE" in
  exit) exit 3 ;;
  sleep) trap 'echo "term $$" >> "$WATCHDOG_RECORD"; exit 0' TERM ;;
  stubborn) trap '' TERM ;;
esac
echo "ready $$" >> "$WATCHDOG_RECORD"
while :; do sleep 0.05; done
"""

FAST = Backoff(initial=0.01, maximum=0.04, factor=2.0, healthy_after=60.0)


def fake_watchdog(tmp_path: Path, mode: str) -> tuple[WatchdogOptions, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "amazon-efs-mount-watchdog"
    script.write_text(FAKE_WATCHDOG)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / "record"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "WATCHDOG_RECORD": str(record), "WATCHDOG_MODE": mode}
    return WatchdogOptions(backoff=FAST, stop_timeout=0.5, env=env), record


def lines(record: Path, word: str) -> list[str]:
    if not record.exists():
        return []
    return [line for line in record.read_text().splitlines() if line.startswith(word + " ")]


async def wait_for_line(record: Path, word: str, count: int = 1) -> list[str]:
    # Another process writes the file, so there is no event to wait on: poll. Bounded by
    # the per-test timeout; nothing here asserts on time.
    while len(found := lines(record, word)) < count:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return found


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(("previous", "ran_for", "expected"), [
    (None, 0.0, 0.01),
    (0.01, 0.0, 0.02),
    (0.02, 1.0, 0.04),
    (0.04, 0.0, 0.04),  # capped
    (0.04, 60.0, 0.01),  # a healthy run resets the backoff
])
def test_backoff(previous: float | None, ran_for: float, expected: float) -> None:
    assert FAST.next_delay(previous, ran_for) == expected


@pytest.mark.slow  # a stand-in watchdog process
@pytest.mark.asyncio
async def test_an_exiting_watchdog_is_restarted_with_growing_capped_delays(
        tmp_path: Path) -> None:
    options, record = fake_watchdog(tmp_path, "exit")
    exits: list[tuple[int | None, float]] = []
    enough = asyncio.Event()

    def on_exit(returncode: int | None, delay: float) -> None:
        exits.append((returncode, delay))
        if len(exits) >= 4:
            enough.set()

    task = asyncio.create_task(supervise_watchdog(options, on_exit=on_exit))
    await enough.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert exits[:4] == [(3, 0.01), (3, 0.02), (3, 0.04), (3, 0.04)]
    assert len(lines(record, "start")) >= 4


@pytest.mark.slow  # a stand-in watchdog process
@pytest.mark.asyncio
async def test_shutdown_sends_sigterm_and_waits(tmp_path: Path) -> None:
    options, record = fake_watchdog(tmp_path, "sleep")
    registry = ChildRegistry()
    pids: list[int] = []
    task = asyncio.create_task(
        supervise_watchdog(options, registry=registry, on_start=pids.append))
    await wait_for_line(record, "ready")
    assert pids[0] in registry  # the orphan reaper must leave it alone
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert lines(record, "term") == [f"term {pids[0]}"]
    assert not process_exists(pids[0])
    assert pids[0] not in registry
    assert len(pids) == 1  # a stop is not a crash: no restart


@pytest.mark.slow  # a stand-in watchdog process
@pytest.mark.asyncio
async def test_a_watchdog_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    options, record = fake_watchdog(tmp_path, "stubborn")
    pids: list[int] = []
    task = asyncio.create_task(supervise_watchdog(options, on_start=pids.append))
    await wait_for_line(record, "ready")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert lines(record, "term") == []
    assert not process_exists(pids[0])


@pytest.mark.slow  # a stand-in watchdog process
@pytest.mark.asyncio
async def test_a_missing_executable_is_retried_not_fatal(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no watchdog anywhere on this PATH
    options = WatchdogOptions(backoff=FAST, env=env)
    exits: list[tuple[int | None, float]] = []
    enough = asyncio.Event()

    def on_exit(returncode: int | None, delay: float) -> None:
        exits.append((returncode, delay))
        if len(exits) >= 3:
            enough.set()

    task = asyncio.create_task(supervise_watchdog(options, on_exit=on_exit))
    await enough.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert exits[:3] == [(None, 0.01), (None, 0.02), (None, 0.04)]
