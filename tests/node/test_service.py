"""Node RPCs that need no mount: validation naming the field, NodeGetInfo, capabilities."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.rpc.hook import CallsInFlight, instrument
from testbed.csi_builders import mount_capability as capability
from testbed.csi_builders import publish_request, stage_request
from tests.support.node import FS_ID, local_parts

Mode = csi.VolumeCapabilityAccessModeMode
RpcType = csi.NodeServiceCapabilityRpcType


@pytest_asyncio.fixture
async def stub(tmp_path: Path) -> AsyncIterator[csi.NodeStub]:
    parts = local_parts(tmp_path / "efs")
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        yield csi.NodeStub(channel)



STAGE_CASES = [
    (csi.NodeStageVolumeRequest(staging_target_path="/s", volume_capability=capability()),
     "volume_id"),
    (csi.NodeStageVolumeRequest(volume_id=FS_ID, volume_capability=capability()),
     "staging_target_path"),
    (csi.NodeStageVolumeRequest(volume_id=FS_ID, staging_target_path="relative",
                                volume_capability=capability()), "staging_target_path"),
    (csi.NodeStageVolumeRequest(volume_id=FS_ID, staging_target_path="/s"),
     "volume_capability"),
    (csi.NodeStageVolumeRequest(volume_id=FS_ID, staging_target_path="/s",
                                volume_capability=csi.VolumeCapability(
                                    block=csi.VolumeCapabilityBlockVolume(),
                                    access_mode=csi.VolumeCapabilityAccessMode(
                                        mode=Mode.SINGLE_NODE_WRITER))), "block"),
    (csi.NodeStageVolumeRequest(volume_id=FS_ID, staging_target_path="/s",
                                volume_capability=csi.VolumeCapability(
                                    mount=csi.VolumeCapabilityMountVolume())), "access_mode"),
    (stage_request("fs-xyz", Path("/s")), "volume_id"),
    (stage_request(FS_ID, Path("/s"), context={"bogus": "1"}), "'bogus'"),
    (stage_request(FS_ID, Path("/s"), flags=["iam,crossaccount"]), "mount_flags"),
    (stage_request(FS_ID, Path("/s"), context={"mounttargetip": "nope"}), "mounttargetip"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("request_", "named"), STAGE_CASES)
async def test_stage_rejects_naming_the_field(stub: csi.NodeStub,
                                              request_: csi.NodeStageVolumeRequest,
                                              named: str) -> None:
    with pytest.raises(GRPCError) as caught:
        await stub.node_stage_volume(request_)
    assert caught.value.status == Status.INVALID_ARGUMENT
    assert named in str(caught.value.message)


PUBLISH_CASES = [
    (csi.NodePublishVolumeRequest(staging_target_path="/s", target_path="/t",
                                  volume_capability=capability()), "volume_id"),
    (csi.NodePublishVolumeRequest(volume_id=FS_ID, staging_target_path="/s",
                                  volume_capability=capability()), "target_path"),
    (csi.NodePublishVolumeRequest(volume_id=FS_ID, target_path="/t", staging_target_path="/s"),
     "volume_capability"),
    (publish_request("fs-1;rm", Path("/s"), Path("/t")), "volume_id"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("request_", "named"), PUBLISH_CASES)
async def test_publish_rejects_naming_the_field(stub: csi.NodeStub,
                                                request_: csi.NodePublishVolumeRequest,
                                                named: str) -> None:
    with pytest.raises(GRPCError) as caught:
        await stub.node_publish_volume(request_)
    assert caught.value.status == Status.INVALID_ARGUMENT
    assert named in str(caught.value.message)


@pytest.mark.asyncio
@pytest.mark.parametrize(("call", "named"), [
    ("unstage_no_volume", "volume_id"), ("unstage_no_path", "staging_target_path"),
    ("unpublish_no_volume", "volume_id"), ("unpublish_no_path", "target_path"),
    ("stats_no_volume", "volume_id"), ("stats_no_path", "volume_path"),
])
async def test_other_required_fields(stub: csi.NodeStub, call: str, named: str) -> None:
    calls = {
        "unstage_no_volume": lambda: stub.node_unstage_volume(
            csi.NodeUnstageVolumeRequest(staging_target_path="/s")),
        "unstage_no_path": lambda: stub.node_unstage_volume(
            csi.NodeUnstageVolumeRequest(volume_id=FS_ID)),
        "unpublish_no_volume": lambda: stub.node_unpublish_volume(
            csi.NodeUnpublishVolumeRequest(target_path="/t")),
        "unpublish_no_path": lambda: stub.node_unpublish_volume(
            csi.NodeUnpublishVolumeRequest(volume_id=FS_ID)),
        "stats_no_volume": lambda: stub.node_get_volume_stats(
            csi.NodeGetVolumeStatsRequest(volume_path="/t")),
        "stats_no_path": lambda: stub.node_get_volume_stats(
            csi.NodeGetVolumeStatsRequest(volume_id=FS_ID)),
    }
    with pytest.raises(GRPCError) as caught:
        await calls[call]()
    assert caught.value.status == Status.INVALID_ARGUMENT
    assert named in str(caught.value.message)


@pytest.mark.asyncio
async def test_node_get_info(stub: csi.NodeStub) -> None:
    reply = await stub.node_get_info(csi.NodeGetInfoRequest())
    assert reply.node_id == "node-a"
    assert reply.max_volumes_per_node == 16
    assert reply.accessible_topology is not None
    assert reply.accessible_topology.segments == {"topology.kubernetes.io/zone": "us-east-1a"}


@pytest.mark.asyncio
async def test_node_get_info_without_zone_has_no_topology(tmp_path: Path) -> None:
    parts = local_parts(tmp_path, zone=None)
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        reply = await csi.NodeStub(channel).node_get_info(csi.NodeGetInfoRequest())
    assert reply.accessible_topology is None


@pytest.mark.asyncio
@pytest.mark.parametrize("stats_enabled", [True, False])
async def test_capabilities(tmp_path: Path, stats_enabled: bool) -> None:
    parts = local_parts(tmp_path, stats_enabled=stats_enabled)
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        reply = await csi.NodeStub(channel).node_get_capabilities(
            csi.NodeGetCapabilitiesRequest())
    kinds = {c.rpc.type for c in reply.capabilities if c.rpc is not None}
    expected = {RpcType.STAGE_UNSTAGE_VOLUME, RpcType.SINGLE_NODE_MULTI_WRITER,
                RpcType.VOLUME_CONDITION}
    assert kinds == (expected | {RpcType.GET_VOLUME_STATS} if stats_enabled else expected)


@pytest.mark.asyncio
async def test_expand_is_unimplemented(stub: csi.NodeStub) -> None:
    with pytest.raises(GRPCError) as caught:
        await stub.node_expand_volume(csi.NodeExpandVolumeRequest(volume_id=FS_ID,
                                                                  volume_path="/t"))
    assert caught.value.status == Status.UNIMPLEMENTED
