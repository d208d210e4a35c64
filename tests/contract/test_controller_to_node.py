"""What the controller writes, the node reads: the contract of efs_csi.contract, end to end.

The real controller service (over the in-memory EFS API) answers CreateVolume in every form
it has; its answer goes to the real node service (over the in-memory mount table) exactly as
Kubernetes carries it: the volume handle to NodeStage and NodePublish, the volume context to
both, the topology beside NodeGetInfo's. The node must parse all of it, mount what the
controller meant, and report the requested size. A property test does the same for every
value the volume context can hold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from grpclib.testing import ChannelFor
from hypothesis import given
from hypothesis import strategies as st

from efs_csi import csi
from efs_csi.cloud import FileSystem, MountTarget
from efs_csi.contract import TOPOLOGY_ZONE_KEY
from efs_csi.contract.volume_context import (
    KNOWN_KEYS,
    VolumeContext,
    parse_volume_context,
    write_volume_context,
)
from efs_csi.contract.volume_id import parse_volume_id
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.provisioning import Provisioner
from efs_csi_controller.service import ControllerService
from testbed.csi_builders import mount_capability, publish_request, stage_request
from testbed.fake_cloud import FakeCloud
from tests.support.fakes.mounts import FakeMountTable
from tests.support.node import fake_parts

FS = "fs-0123456789abcdef0"
NODE_ZONE = "us-east-1b"
ROLE = {"awsRoleArn": "arn:aws:iam::123456789012:role/efs", "crossaccount": "true"}
GIB = 1 << 30


@dataclass
class Plugin:
    controller: csi.ControllerStub
    node: csi.NodeStub
    table: FakeMountTable
    work: Path


@pytest_asyncio.fixture
async def plugin(tmp_path: Path) -> AsyncIterator[Plugin]:
    cloud = FakeCloud()
    cloud.add_file_system(FileSystem(FS, availability_zone_name=NODE_ZONE))
    cloud.mount_targets_by_fs[FS] = [MountTarget("fsmt-a", FS, "10.0.0.1", "us-east-1a"),
                                     MountTarget("fsmt-b", FS, "10.0.0.2", NODE_ZONE)]
    # The other account's EFS API (cloud_for a role): the same fake.

    controller = ControllerService(Provisioner(
        clouds=cloud, allocator=GidAllocator(access_point_limit=10),
        kube=None, extra_tags={}, root_dirs=None))
    table = FakeMountTable()
    node = fake_parts(table, zone=NODE_ZONE).service
    async with ChannelFor([instrument(controller, CallsInFlight())]) as to_controller, \
            ChannelFor([instrument(node, CallsInFlight())]) as to_node:
        yield Plugin(csi.ControllerStub(to_controller), csi.NodeStub(to_node), table, tmp_path)


# Every form of CreateVolume's answer: (StorageClass parameters, secrets, the mount options
# the node must derive from it).
FORMS = {
    "plain": ({}, {}, []),
    "zone affinity": ({"enforceZoneAffinity": "true"}, {}, []),
    "cross-account, one zone": ({"az": "us-east-1a"}, ROLE,
                                ["crossaccount", "mounttargetip=10.0.0.1"]),
    "cross-account, every zone": ({}, ROLE, ["crossaccount", "mounttargetip=10.0.0.2"]),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("form", FORMS, ids=str)
async def test_the_node_mounts_what_the_controller_provisioned(plugin: Plugin, form: str) -> None:
    parameters, secrets, cross_account_options = FORMS[form]
    created = await plugin.controller.create_volume(csi.CreateVolumeRequest(
        name=f"pvc-{form.replace(' ', '-').replace(',', '')}",
        capacity_range=csi.CapacityRange(required_bytes=3 * GIB),
        volume_capabilities=[mount_capability()],
        parameters={"provisioningMode": "efs-ap", "fileSystemId": FS, "directoryPerms": "700",
                    **parameters},
        secrets=secrets))
    volume = created.volume
    assert volume is not None
    # Every key the controller writes is one the node accepts.
    assert set(volume.volume_context) <= set(KNOWN_KEYS)
    handle = parse_volume_id(volume.volume_id)
    context = parse_volume_context(volume.volume_context)
    assert context.capacity_bytes == 3 * GIB

    staging, target = plugin.work / "staging", plugin.work / "pod"
    await plugin.node.node_stage_volume(stage_request(
        volume.volume_id, staging, context=dict(volume.volume_context)))
    await plugin.node.node_publish_volume(publish_request(
        volume.volume_id, staging, target, context=dict(volume.volume_context)))
    options = ",".join(["tls", f"accesspoint={handle.access_point_id}",
                        *cross_account_options])
    assert plugin.table.mounts() == [f"mount -t efs -o {options} {FS}:/ {staging}",
                                     f"mount --bind {staging} {target}"]

    # The topology the controller put on the volume uses the key the node reports, and the
    # node's zone satisfies it.
    info = await plugin.node.node_get_info(csi.NodeGetInfoRequest())
    assert info.accessible_topology is not None
    node_segments = info.accessible_topology.segments
    for topology in volume.accessible_topology:
        assert set(topology.segments) == {TOPOLOGY_ZONE_KEY} == set(node_segments)
        assert topology.segments[TOPOLOGY_ZONE_KEY] == node_segments[TOPOLOGY_ZONE_KEY]
    assert bool(volume.accessible_topology) == ("enforceZoneAffinity" in parameters)

    # The requested size comes back as the volume's capacity, not NFS's 8 EiB.
    stats = await plugin.node.node_get_volume_stats(csi.NodeGetVolumeStatsRequest(
        volume_id=volume.volume_id, volume_path=str(target)))
    total = {usage.unit: usage.total for usage in stats.usage}
    assert total[csi.VolumeUsageUnit.BYTES] == 3 * GIB


zones = st.from_regex(r"[a-z]{2}-[a-z]{4,9}-[1-9][a-f]", fullmatch=True)
addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
contexts = st.builds(
    VolumeContext,
    encrypt_in_transit=st.booleans(),
    mount_target_ip=st.none() | addresses,
    mount_target_ip_map=st.dictionaries(zones, addresses, max_size=4),
    cross_account=st.booleans(),
    capacity_bytes=st.none() | st.integers(min_value=0, max_value=1 << 62),
)


@given(contexts)
def test_every_context_the_controller_can_write_parses_back_to_itself(
        context: VolumeContext) -> None:
    written = write_volume_context(context)
    assert all(isinstance(value, str) for value in written.values())
    assert parse_volume_context(written) == context
    # Kubernetes stores the map as it is; keys may come back in any case (the reference
    # driver's users write them so) and mean the same.
    assert parse_volume_context({key.lower(): value for key, value in written.items()}) == \
        context


def test_the_wire_format() -> None:
    """What the controller writes, to the letter: a key only where the value is not the
    default, the map of mount targets as compact JSON with its zones in name order."""
    assert write_volume_context(VolumeContext()) == {}
    assert parse_volume_context({}) == VolumeContext()
    written = write_volume_context(VolumeContext(
        capacity_bytes=5, cross_account=True, encrypt_in_transit=False,
        mount_target_ip_map={"us-east-1b": "10.0.0.2", "us-east-1a": "10.0.0.1"}))
    assert written == {"capacityBytes": "5", "crossaccount": "true",
                       "encryptInTransit": "false",
                       "mounttargetipmap": '{"us-east-1a":"10.0.0.1","us-east-1b":"10.0.0.2"}'}
