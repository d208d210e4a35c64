"""Node fixtures: a local-backend node over an in-memory gRPC channel, with real bind mounts,
and a teardown that always removes every mount left under the test's directory; and the same
node over the in-memory mount table, without root."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.rpc.hook import CallsInFlight, instrument
from testbed.mounts import unmount_everything_under
from tests.support.ci import require_root
from tests.support.fakes.mounts import FakeMountTable
from tests.support.fixtures.binaries import binary  # noqa: F401 - fixture
from tests.support.fixtures.kube import fake_kube_api, kube_over_fake_api  # noqa: F401 - fixtures
from tests.support.fixtures.metrics import metrics_server  # noqa: F401 - fixture
from tests.support.node import FS_ID, FakeNode, LocalNode, fake_parts, local_parts


@pytest.fixture
def mounts_cleaned(tmp_path: Path) -> Iterator[Path]:
    require_root()
    yield tmp_path
    unmount_everything_under(tmp_path)


@pytest_asyncio.fixture
async def local_node(mounts_cleaned: Path) -> AsyncIterator[LocalNode]:
    root = mounts_cleaned / "efs"
    (root / FS_ID).mkdir(parents=True)
    parts = local_parts(root)
    service = instrument(parts.service, CallsInFlight())
    async with ChannelFor([service]) as channel:
        yield LocalNode(parts, csi.NodeStub(channel), root, mounts_cleaned / "kubelet")


@pytest_asyncio.fixture
async def fake_node(tmp_path: Path) -> AsyncIterator[FakeNode]:
    """The node (efs backend) over the in-memory mount table, through the real gRPC hook."""
    table = FakeMountTable()
    parts = fake_parts(table)
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        yield FakeNode(parts, csi.NodeStub(channel), table, tmp_path / "kubelet")
