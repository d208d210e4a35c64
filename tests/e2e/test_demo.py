"""`make demo` is a contract with every new user: run it as CI would, as root and not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.support.ci import REPO, skip_or_fail

DEMO = REPO / "demo" / "demo.py"


def run_demo(prefix: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, str(DEMO)], capture_output=True, text=True,
                          timeout=240, cwd=REPO, check=False)


def check(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "14 steps passed" in result.stdout
    assert "FAILED" not in result.stdout
    assert "pod b read 'hello from pod a'" in result.stdout
    assert "write refused: read-only file system" in result.stdout
    assert "no mounts, no processes, no access points" in result.stdout


@pytest.mark.timeout(300)
def test_demo_as_root() -> None:
    if os.geteuid() != 0:
        skip_or_fail("runs the demo as root (the non-root path is the next test)")
    check(run_demo([]))


@pytest.mark.timeout(300)
def test_demo_without_root_uses_a_user_namespace() -> None:
    """As an unprivileged uid the demo re-runs itself in its own user and mount namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        skip_or_fail("unshare (util-linux) is needed to start as a non-root uid")
    result = run_demo([unshare, "--user", "--map-user=1000", "--map-group=1000"])
    check(result)
