"""The production data path under test (testbed/datapath): the node image run as the chart
runs it, the real efs-utils v3.2.0 (mount.efs, efs-proxy, the watchdog), a TLS mount target
and nfs-ganesha, all in a loopback-only namespace; only the kernel's NFS mount is stood in for.

Needs root, Debian's packages (installed here with apt-get when missing), /dev/fuse and the
built images; skips without them on a laptop and fails under CI (tests/support/ci.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testbed.datapath import packages
from testbed.datapath.harness import DataPath, node_values, render_node
from testbed.images import Engine
from testbed.slowfs import libfuse_available
from tests.support.ci import skip_or_fail, tool
from tests.support.fixtures.aws import efs_proxy, file_system, moto, moto_session  # noqa: F401 - fixtures
from tests.support.fixtures.images import engine  # noqa: F401 - fixture


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first test also waits for the images: a cold build compiles efs-proxy."""
    for item in items:
        if "tests/datapath/" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(3600))


def require_the_data_path() -> None:
    if os.geteuid() != 0:
        skip_or_fail("the data path needs root (namespaces, mounts, a Docker engine)")
    absent = packages.ensure()
    if absent:
        skip_or_fail(f"the data path needs Debian's {', '.join(absent)}")
    if not libfuse_available():
        skip_or_fail("the mount stand-in needs libfuse 3 and /dev/fuse")


def start_data_path(engine: Engine, work: Path, report: Callable[[str], None], *,
                    values: dict[str, object] | None = None) -> Iterator[DataPath]:
    kubelet = work / "kubelet"
    manifests = render_node(tool("helm", "HELM"),
                            node_values(kubelet, **(values or {})),  # type: ignore[arg-type]
                            work / "values.yaml")
    path = DataPath(engine, work, manifests, kubelet)
    path.start()
    try:
        yield path
    finally:
        path.stop()
        report("data path start-up (" + ", ".join(
            f"{name} {seconds:.2f}s" for name, seconds in path.timings.items()) + ")")


@pytest.fixture(scope="module")
def datapath(engine: Engine, tmp_path_factory: pytest.TempPathFactory,
             session_report: Callable[[str], None]) -> Iterator[DataPath]:
    require_the_data_path()
    # The node's metrics on too, on the sandbox's loopback (its pod IP there): the tunnels and
    # restarts it reads from the real efs-utils' state files are checked against them.
    yield from start_data_path(engine, tmp_path_factory.mktemp("dp"), session_report,
                               values={"extra": {"enableMetrics": True}})
