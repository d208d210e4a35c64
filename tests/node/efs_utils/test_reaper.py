"""The orphan reaper with real processes: this test process is made a child subreaper, so
an orphaned grandchild really becomes its child, exactly as tunnels do for the node plugin.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from efs_csi_node.efs_utils.reaper import (
    ChildRegistry,
    OrphanReaper,
    adopts_orphans,
    read_zombie_children,
    reap_orphans,
    reapable,
    set_child_subreaper,
)


@pytest.fixture
def subreaper() -> Iterator[None]:
    set_child_subreaper(True)
    try:
        yield
    finally:
        set_child_subreaper(False)


async def orphan(exit_code: int) -> int:
    """Start a grandchild whose parent exits at once; returns the orphan's pid."""
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", f"(exec >/dev/null 2>&1; sleep 0.2; exit {exit_code}) &"
                    " echo $!",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    assert process.returncode == 0  # asyncio got its own child's status
    return int(out)


async def until_zombie(pid: int) -> None:
    # The orphan exits on its own; poll /proc (bounded by the per-test timeout).
    while pid not in read_zombie_children(os.getpid()):  # noqa: ASYNC110
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(("zombies", "seen", "registered", "expected"), [
    ({1, 2}, set(), set(), set()),  # first sighting: give the owner a chance
    ({1, 2}, {1}, set(), {1}),
    ({1, 2}, {1, 2}, {2}, {1}),  # registered pids are never taken
    (set(), {1, 2}, set(), set()),
])
def test_reapable(zombies: set[int], seen: set[int], registered: set[int],
                  expected: set[int]) -> None:
    registry = ChildRegistry()
    for pid in registered:
        registry.add(pid)
    assert reapable(zombies, seen, registry) == expected


def test_stat_parsing_survives_odd_command_names(tmp_path: Path) -> None:
    (tmp_path / "10").mkdir()
    (tmp_path / "10" / "stat").write_text("10 (we ird) Z) Z 77 1 1 0")
    (tmp_path / "11").mkdir()
    (tmp_path / "11" / "stat").write_text("11 (sh) S 77 1 1 0")
    (tmp_path / "12").mkdir()
    (tmp_path / "12" / "stat").write_text("12 (sh) Z 78 1 1 0")
    (tmp_path / "self").mkdir()
    assert read_zombie_children(77, tmp_path) == {10}


def test_subreaper_flag_is_visible() -> None:
    set_child_subreaper(True)
    try:
        assert adopts_orphans()
    finally:
        set_child_subreaper(False)
    assert adopts_orphans() == (os.getpid() == 1)


@pytest.mark.slow  # real child processes
@pytest.mark.asyncio
async def test_an_orphan_is_reaped_on_the_second_sighting(subreaper: None) -> None:
    pid = await orphan(5)
    await until_zombie(pid)
    reaper = OrphanReaper(ChildRegistry())
    assert reaper.sweep() == []  # first sighting
    assert reaper.sweep() == [(pid, 5)]
    assert pid not in read_zombie_children(os.getpid())
    assert not Path(f"/proc/{pid}").exists()


@pytest.mark.slow  # real child processes
@pytest.mark.asyncio
async def test_the_background_task_reaps_and_reports(subreaper: None) -> None:
    reaped: list[tuple[int, int]] = []
    done = asyncio.Event()
    pid = await orphan(9)

    def on_reaped(child: int, code: int) -> None:
        reaped.append((child, code))
        if child == pid:
            done.set()

    task = asyncio.create_task(
        reap_orphans(OrphanReaper(ChildRegistry()), interval=0.02, on_reaped=on_reaped))
    await done.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert (pid, 9) in reaped


@pytest.mark.slow  # real child processes
@pytest.mark.asyncio
async def test_registered_children_keep_their_status_for_their_owner() -> None:
    child = subprocess.Popen(["sh", "-c", "exit 7"])
    registry = ChildRegistry()
    with registry.owned(child.pid):
        await until_zombie(child.pid)
        reaper = OrphanReaper(registry)
        for _ in range(3):
            assert reaper.sweep() == []
    assert child.wait() == 7


@pytest.mark.slow  # real child processes
@pytest.mark.asyncio
async def test_an_unregistered_child_left_unwaited_is_taken() -> None:
    """The counterpart of the test above: what the registry is for."""
    child = subprocess.Popen(["sh", "-c", "exit 7"])
    await until_zombie(child.pid)
    reaper = OrphanReaper(ChildRegistry())
    reaper.sweep()
    assert reaper.sweep() == [(child.pid, 7)]
    assert child.wait() == 0  # subprocess reports a stolen status as 0
