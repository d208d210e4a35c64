"""The controller's service over grpclib's in-memory channel, backed by the in-memory cloud: the
requests, the ``harness`` fixture and the helpers the controller's tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.provisioning import Provisioner
from efs_csi_controller.service import ControllerService
from testbed.fake_cloud import FakeCloud
from tests.support.fakes.kube import FakeKube

FS = "fs-12345678"
PARAMS = {"provisioningMode": "efs-ap", "fileSystemId": FS, "directoryPerms": "700",
          "gidRangeStart": "1000", "gidRangeEnd": "2000", "basePath": "/dyn",
          "csi.storage.k8s.io/pv/name": "pv-1", "csi.storage.k8s.io/pvc/name": "data",
          "csi.storage.k8s.io/pvc/namespace": "team"}
Mode = csi.VolumeCapabilityAccessModeMode


OTHER_FS = "fs-87654321"


def capability(mode: Mode = Mode.MULTI_NODE_MULTI_WRITER, block: bool = False
               ) -> csi.VolumeCapability:
    access_type = ({"block": csi.VolumeCapabilityBlockVolume()} if block
                   else {"mount": csi.VolumeCapabilityMountVolume()})
    return csi.VolumeCapability(access_mode=csi.VolumeCapabilityAccessMode(mode=mode),
                                **access_type)


def create_request(name: str = "pv-1", capacity: int = 5 << 30,
                   extra: dict[str, str] | None = None, **params: str
                   ) -> csi.CreateVolumeRequest:
    return csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=capacity),
        volume_capabilities=[capability()], parameters={**PARAMS, **params, **(extra or {})})


@dataclass
class Harness:
    cloud: FakeCloud
    stub: csi.ControllerStub
    allocator: GidAllocator


def provisioner(cloud: FakeCloud, allocator: GidAllocator,
                kube: FakeKube | None = None) -> Provisioner:
    return Provisioner(clouds=cloud, allocator=allocator, kube=kube,
                       extra_tags={"team": "storage"}, root_dirs=None)


@pytest_asyncio.fixture(name="harness")
async def harness_fixture() -> AsyncIterator[Harness]:
    """The service over the in-memory cloud (tests/controller/conftest.py registers it)."""
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=100)
    kube = FakeKube(config_maps={("kube-system", "efs", "id"): FS + "\n"})
    service = ControllerService(provisioner(cloud, allocator, kube))
    async with ChannelFor([instrument(service, CallsInFlight())]) as channel:
        yield Harness(cloud, csi.ControllerStub(channel), allocator)


async def code_of(call: object) -> tuple[Status, str]:
    with pytest.raises(GRPCError) as raised:
        await call  # type: ignore[misc]
    return raised.value.status, raised.value.message or ""
