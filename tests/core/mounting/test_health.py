"""The stale-mount probe: a stat that does not answer in time is STALE, and a hung path blocks
neither its caller nor any other path. (How the node recovers a stale mount:
tests/node/test_mount_ops.py.)"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path

import pytest

from efs_csi.mounting.blocking import BlockingCalls
from efs_csi.mounting.health import Health, PathProbe, PathState, condition_of


@pytest.mark.asyncio
async def test_a_hung_call_blocks_neither_its_caller_nor_other_paths(tmp_path: Path) -> None:
    release = threading.Event()
    started: list[str] = []

    def stat(path: str) -> object:
        started.append(path)
        if path == "/dead":
            release.wait(30)
        return os.stat(tmp_path)

    probe = PathProbe(BlockingCalls(), 0.2, stat)
    try:
        assert (await probe.check(Path("/dead"))).state is PathState.STALE
        # While the first call is still stuck, the same path answers STALE without a new
        # thread, and other paths are served normally, many at once.
        assert (await probe.check(Path("/dead"))).state is PathState.STALE
        healthy = await asyncio.gather(*(probe.check(tmp_path / str(i)) for i in range(50)))
        assert all(h.state is PathState.OK for h in healthy)
        assert started.count("/dead") == 1
    finally:
        release.set()


@pytest.mark.parametrize(("error", "state", "detail"), [
    (FileNotFoundError(errno.ENOENT, "gone"), PathState.MISSING, ""),
    (NotADirectoryError(errno.ENOTDIR, "file"), PathState.MISSING, "a parent is not a directory"),
    (OSError(errno.ESTALE, "x"), PathState.STALE, "stale file handle"),
    (OSError(errno.EIO, "x"), PathState.STALE, "I/O error"),
    (OSError(errno.ENOTCONN, "x"), PathState.STALE, "transport endpoint not connected"),
    (OSError(errno.EHOSTDOWN, "x"), PathState.STALE, "host is down"),
])
def test_what_an_error_says_about_the_mount(error: OSError, state: PathState,
                                            detail: str) -> None:
    assert condition_of(error) == Health(state, detail)


def test_an_error_that_says_nothing_about_the_mount_is_left_to_the_caller() -> None:
    assert condition_of(PermissionError(errno.EACCES, "no")) is None
