"""moto's server in a process of its own (what the benchmarks run): it serves EFS over HTTP
on loopback and is gone when its context ends."""

from __future__ import annotations

import os
import urllib.request

import pytest

from testbed.moto_server import create_file_system, running_moto


def _children() -> set[int]:
    path = f"/proc/{os.getpid()}/task/{os.getpid()}/children"
    with open(path) as children:
        return {int(pid) for pid in children.read().split()}


@pytest.mark.slow
def test_moto_in_its_own_process_serves_efs_and_stops_with_its_context() -> None:
    before = _children()
    with running_moto(own_process=True) as moto:
        started = _children() - before
        assert len(started) == 1
        assert moto.url.startswith("http://127.0.0.1:")
        assert create_file_system(moto).startswith("fs-")
        moto.reset()
    assert _children() - before == set()
    (pid,) = started
    assert not os.path.exists(f"/proc/{pid}")
    try:
        urllib.request.urlopen(f"{moto.url}/moto-api/", timeout=2)
    except OSError:
        pass
    else:
        raise AssertionError(f"moto still answers at {moto.url}")
