"""pytest fixtures for the real control plane (registered by tests/conftest.py).

One control plane serves the whole session (about 5 s to start); kubelets and the driver's pods
are per module. Their files live in one short directory under /tmp (unix socket paths inside a
kubelet's root dir must stay under 108 bytes), removed at the end once nothing is mounted
there, or kept when ``EFS_CSI_KEEP_CLUSTER_DIR`` is set, to read the components' logs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import ClusterTools, ControlPlane, mount_points_under


@pytest.fixture(scope="session")
def cluster_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="efs-k8s-", dir="/tmp"))
    yield directory
    left = mount_points_under(directory)
    if left:  # never delete through a mount: that would remove what it shows
        raise AssertionError(f"mounts left under {directory}: {left}")
    if os.environ.get("EFS_CSI_KEEP_CLUSTER_DIR"):  # logs to read after a failure
        print(f"cluster files kept in {directory}")
        return
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def control_plane(cluster_dir: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(cluster_dir / "control-plane", ClusterTools.find()).start()
    try:
        yield plane
    finally:
        plane.stop()
