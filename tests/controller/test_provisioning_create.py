"""CreateVolume's use case (``Provisioner.create``) through the service, backed by the in-memory
cloud: one access point per volume, idempotent across retries and restarts, its token, GID,
tags and volume context; concurrency; failures that leave nothing reserved; StorageClass
booleans in the reference driver's spellings."""

from __future__ import annotations

import asyncio
import json

import pytest
from grpclib.const import Status
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.cloud import (
    AccessPointRequest,
    CreationInfo,
    FileSystem,
    MountTarget,
    PosixUser,
)
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.paths import unique_suffix
from efs_csi_controller.service import ControllerService
from tests.support.controller import (
    FS,
    Harness,
    code_of,
    create_request,
    provisioner,
)


@pytest.mark.asyncio
async def test_create_makes_one_access_point_with_a_gid_and_tags(harness: Harness) -> None:
    reply = await harness.stub.create_volume(create_request())
    volume = reply.volume
    assert volume is not None and volume.capacity_bytes == 5 << 30
    assert volume.volume_id.startswith(f"{FS}::fsap-")
    assert volume.volume_context == {"capacityBytes": str(5 << 30)}
    [ap] = harness.cloud.access_points_by_id.values()
    assert ap.posix_user is not None and 1000 <= ap.posix_user.gid <= 2000  # gidRange
    assert ap.posix_user.uid == ap.posix_user.gid
    assert ap.root_path.startswith("/dyn/pv-1-") and ap.client_token == "pv-1"
    assert ap.tags["efs.csi.aws.com/cluster"] == "true" and ap.tags["team"] == "storage"
    assert ap.tags["kubernetes.io/created-for/pvc/name"] == "data"
    assert harness.cloud.calls["CreateAccessPoint"] == 1


@pytest.mark.asyncio
async def test_repeated_create_returns_the_same_volume_without_new_calls(harness: Harness
                                                                         ) -> None:
    first = await harness.stub.create_volume(create_request())
    second = await harness.stub.create_volume(create_request())
    assert first == second
    assert harness.cloud.calls["CreateAccessPoint"] == 1
    status, message = await code_of(harness.stub.create_volume(create_request(capacity=1)))
    assert status == Status.ALREADY_EXISTS and "capacity" in message


@pytest.mark.asyncio
async def test_restarted_controller_finds_the_volume_and_conflicts_are_resolved(
        harness: Harness) -> None:
    first = await harness.stub.create_volume(create_request())
    # A fresh controller process: learns the access points, finds the token.
    fresh = ControllerService(provisioner(harness.cloud, GidAllocator(access_point_limit=100)))
    async with ChannelFor([instrument(fresh, CallsInFlight())]) as channel:
        again = await csi.ControllerStub(channel).create_volume(create_request())
    assert again == first
    # An access point made behind our back after we learned: EFS says AlreadyExists.
    await harness.stub.create_volume(create_request(name="pv-2"))
    other = harness.cloud.add_existing(AccessPointRequest(
        FS, "pv-3", f"/dyn/pv-1-{unique_suffix('pv-3')}", PosixUser(1500, 1500),
        CreationInfo(1500, 1500, "700")))
    reply = await harness.stub.create_volume(create_request(name="pv-3"))
    # Resolved by looking the access point up after AccessPointAlreadyExists, not a duplicate.
    assert reply.volume is not None and reply.volume.volume_id.endswith(other.access_point_id)
    assert len(harness.cloud.access_points_by_id) == 3
    assert harness.cloud.calls["CreateAccessPoint"] == 3


@pytest.mark.asyncio
async def test_long_names_get_a_hashed_64_char_token(harness: Harness) -> None:
    await harness.stub.create_volume(create_request(name="p" * 100))
    [ap] = harness.cloud.access_points_by_id.values()
    assert len(ap.client_token) == 64 and ap.client_token != "p" * 64


@pytest.mark.asyncio
async def test_concurrent_same_name_is_aborted_and_different_names_run_in_parallel(
        harness: Harness) -> None:
    harness.cloud.gate = asyncio.Event()
    creates = [asyncio.ensure_future(harness.stub.create_volume(create_request(name=f"v{i}")))
               for i in range(40)]
    while harness.cloud.calls["CreateAccessPoint"] < 40:  # noqa: ASYNC110 - all 40 in flight
        await asyncio.sleep(0.01)
    status, _ = await code_of(harness.stub.create_volume(create_request(name="v0")))
    assert status == Status.ABORTED
    harness.cloud.gate.set()
    replies = await asyncio.gather(*creates)
    gids = {ap.posix_user.gid for ap in harness.cloud.access_points_by_id.values()
            if ap.posix_user}
    assert len(replies) == 40 and len(gids) == 40


@pytest.mark.asyncio
async def test_failed_create_leaves_nothing_reserved(harness: Harness) -> None:
    harness.cloud.fail_creates = 1
    status, _ = await code_of(harness.stub.create_volume(create_request()))
    assert status == Status.INTERNAL
    [snapshot] = harness.allocator.snapshot()
    assert snapshot.in_flight_creates == 0 and snapshot.gids_in_use == 0
    await harness.stub.create_volume(create_request())
    assert len(harness.cloud.access_points_by_id) == 1
    [snapshot] = harness.allocator.snapshot()
    assert snapshot.in_flight_creates == 0 and snapshot.gids_in_use == 1


@pytest.mark.asyncio
async def test_unknown_file_system_is_not_found(harness: Harness) -> None:
    status, message = await code_of(harness.stub.create_volume(
        create_request(fileSystemId="fs-87654321")))
    assert status == Status.NOT_FOUND and "fs-87654321" in message


@pytest.mark.asyncio
async def test_file_system_id_from_config_map(harness: Harness) -> None:
    params = {k: v for k, v in create_request().parameters.items() if k != "fileSystemId"}
    request = create_request()
    request.parameters = {**params, "fileSystemIdConfigRef": "kube-system/efs/id"}
    reply = await harness.stub.create_volume(request)
    assert reply.volume is not None and reply.volume.volume_id.startswith(FS)
    request.parameters = {**params, "fileSystemIdConfigRef": "kube-system/efs/missing"}
    status, _ = await code_of(harness.stub.create_volume(request))
    assert status == Status.NOT_FOUND


@pytest.mark.asyncio
async def test_cross_account_context_and_zone_topology(harness: Harness) -> None:
    harness.cloud.add_file_system(FileSystem(FS, availability_zone_name="us-east-1b"))
    harness.cloud.mount_targets_by_fs[FS] = [
        MountTarget("fsmt-1", FS, "10.0.0.1", "us-east-1a"),
        MountTarget("fsmt-2", FS, "10.0.0.2", "us-east-1b"),
        MountTarget("fsmt-3", FS, "10.0.0.3", "us-east-1c", life_cycle_state="creating")]
    secrets = {"awsRoleArn": "arn:aws:iam::123456789012:role/efs", "crossaccount": "true"}
    request = create_request(enforceZoneAffinity="true")
    request.secrets = secrets
    reply = await harness.stub.create_volume(request)
    assert reply.volume is not None
    context = reply.volume.volume_context
    assert context["crossaccount"] == "true"
    assert json.loads(context["mounttargetipmap"]) == {"us-east-1a": "10.0.0.1",
                                                       "us-east-1b": "10.0.0.2"}
    assert reply.volume.accessible_topology == [
        csi.Topology(segments={"topology.kubernetes.io/zone": "us-east-1b"})]
    request = create_request(name="pv-az", az="us-east-1a")
    request.secrets = secrets
    reply = await harness.stub.create_volume(request)
    assert reply.volume is not None
    assert reply.volume.volume_context["mounttargetip"] == "10.0.0.1"
    # Each create asks for the role's cloud (CloudFactory caches it: tests/core/adapters/aws).
    assert harness.cloud.roles_asked == [("arn:aws:iam::123456789012:role/efs", None)] * 2
    request = create_request(name="pv-bad")
    request.secrets = {"awsRoleArn": "not-an-arn"}
    status, message = await code_of(harness.stub.create_volume(request))
    assert status == Status.INVALID_ARGUMENT and "awsRoleArn" in message


GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@pytest.mark.asyncio
@pytest.mark.parametrize("spelling", GO_TRUE + GO_FALSE)
async def test_boolean_parameters_take_every_go_parsebool_spelling(harness: Harness,
                                                                   spelling: str) -> None:
    """StorageClasses written for the reference driver (Go's strconv.ParseBool) work as-is."""
    reply = await harness.stub.create_volume(create_request(
        name=f"pv-{spelling}", ensureUniqueDirectory=spelling, enforceZoneAffinity=spelling))
    assert reply.volume is not None
    [ap] = [ap for ap in harness.cloud.access_points_by_id.values()
            if ap.client_token == f"pv-{spelling}"]
    unique = spelling in GO_TRUE
    assert ap.root_path == (f"/dyn/pv-1-{unique_suffix(f'pv-{spelling}')}" if unique
                            else "/dyn/pv-1")
    # enforceZoneAffinity=true costs one DescribeFileSystems; false costs none.
    assert harness.cloud.calls["DescribeFileSystems"] == (1 if unique else 0)


@pytest.mark.asyncio
@pytest.mark.parametrize("spelling", ["yes", "on", "tRuE1", "", "2"])
async def test_other_boolean_spellings_are_refused_naming_the_parameter(
        harness: Harness, spelling: str) -> None:
    status, message = await code_of(harness.stub.create_volume(
        create_request(reuseAccessPoint=spelling)))
    assert status == Status.INVALID_ARGUMENT and "reuseAccessPoint" in message
    assert sum(harness.cloud.calls.values()) == 0
