"""The stale-mount probe: a stat that does not answer in time is STALE, and a hung path blocks
neither its caller nor any other path. (How the node recovers a stale mount:
tests/node/test_mount_state.py.)"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from efs_csi.mounting.health import PathProbe, PathState
from efs_csi.mounting.offloop import OffLoop


@pytest.mark.asyncio
async def test_a_hung_call_blocks_neither_its_caller_nor_other_paths(tmp_path: Path) -> None:
    release = threading.Event()
    started: list[str] = []

    def stat(path: str) -> object:
        started.append(path)
        if path == "/dead":
            release.wait(30)
        return os.stat(tmp_path)

    probe = PathProbe(OffLoop(), 0.2, stat)
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
