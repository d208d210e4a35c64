"""The Controller service over grpclib's in-memory channel, backed by the in-memory cloud."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.cloud import (
    AccessPointRequest,
    CreationInfo,
    FileSystem,
    MountTarget,
    PosixUser,
)
from efs_csi.rpc.hook import InFlight, instrument
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.paths import unique_suffix
from efs_csi_controller.provisioning import Provisioner
from efs_csi_controller.service import ControllerService
from tests.support.fakes.cloud import FakeCloud
from tests.support.fakes.kube import FakeKube

FS = "fs-12345678"
PARAMS = {"provisioningMode": "efs-ap", "fileSystemId": FS, "directoryPerms": "700",
          "gidRangeStart": "1000", "gidRangeEnd": "2000", "basePath": "/dyn",
          "csi.storage.k8s.io/pv/name": "pv-1", "csi.storage.k8s.io/pvc/name": "data",
          "csi.storage.k8s.io/pvc/namespace": "team"}
Mode = csi.VolumeCapabilityAccessModeMode


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


@pytest_asyncio.fixture
async def harness() -> AsyncIterator[Harness]:
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=100)
    kube = FakeKube(config_maps={("kube-system", "efs", "id"): FS + "\n"})
    service = ControllerService(provisioner(cloud, allocator, kube))
    async with ChannelFor([instrument(service, InFlight())]) as channel:
        yield Harness(cloud, csi.ControllerStub(channel), allocator)


async def code_of(call: object) -> tuple[Status, str]:
    with pytest.raises(GRPCError) as raised:
        await call  # type: ignore[misc]
    return raised.value.status, raised.value.message or ""


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
    async with ChannelFor([instrument(fresh, InFlight())]) as channel:
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
@pytest.mark.parametrize(("request_", "named"), [
    (create_request(name=""), "name is required"),
    (create_request(directoryPerms="999"), "directoryPerms"),
    (create_request(subPathPattern="${.PVC.uid}"), "subPathPattern"),
    (create_request(basePath="/a/b/c/d"), "components"),
    (create_request(enableTagging="false"), "enableTagging"),  # conflicts with --tags
    (csi.CreateVolumeRequest(name="x", parameters=PARAMS), "volume_capabilities"),
    (csi.CreateVolumeRequest(name="x", parameters=PARAMS,
                             volume_capabilities=[capability(block=True)]), "block"),
    (csi.CreateVolumeRequest(name="x", parameters=PARAMS, volume_capabilities=[capability()],
                             capacity_range=csi.CapacityRange(required_bytes=10,
                                                              limit_bytes=5)), "limit_bytes"),
])
async def test_bad_requests_fail_before_any_aws_call(harness: Harness,
                                                     request_: csi.CreateVolumeRequest,
                                                     named: str) -> None:
    status, message = await code_of(harness.stub.create_volume(request_))
    assert status == Status.INVALID_ARGUMENT and named in message
    assert sum(harness.cloud.calls.values()) == 0


@pytest.mark.asyncio
async def test_unknown_file_system_is_not_found(harness: Harness) -> None:
    status, message = await code_of(harness.stub.create_volume(
        create_request(fileSystemId="fs-87654321")))
    assert status == Status.NOT_FOUND and "fs-87654321" in message


@pytest.mark.asyncio
async def test_delete_is_idempotent_and_checks_the_file_system(harness: Harness) -> None:
    reply = await harness.stub.create_volume(create_request())
    assert reply.volume is not None
    volume_id = reply.volume.volume_id
    wrong = volume_id.replace(FS, "fs-aaaaaaaa")
    status, message = await code_of(harness.stub.delete_volume(
        csi.DeleteVolumeRequest(volume_id=wrong)))
    assert status == Status.INVALID_ARGUMENT and FS in message
    for target in (volume_id, volume_id, "not-a-handle", FS, f"{FS}::fsap-0123456789abcdef"):
        await harness.stub.delete_volume(csi.DeleteVolumeRequest(volume_id=target))
    assert harness.cloud.access_points_by_id == {}
    status, _ = await code_of(harness.stub.delete_volume(csi.DeleteVolumeRequest()))
    assert status == Status.INVALID_ARGUMENT
    [snapshot] = harness.allocator.snapshot()
    assert snapshot.access_points == 0 and snapshot.gids_in_use == 0


@pytest.mark.asyncio
async def test_deleting_a_known_access_point_costs_one_call_however_old_the_listing() -> None:
    """What a delete needs of an access point (its file system) never changes: one this
    process knows is deleted without describing it first, even after the listing aged."""
    clock = [0.0]
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=100, max_age=5.0, clock=lambda: clock[0])
    service = ControllerService(provisioner(cloud, allocator))
    async with ChannelFor([instrument(service, InFlight())]) as channel:
        stub = csi.ControllerStub(channel)
        replies = [await stub.create_volume(create_request(name=f"pv-{n}")) for n in range(3)]
        clock[0] = 60.0  # far beyond the inventory's max age
        cloud.calls.clear()
        for reply in replies:
            assert reply.volume is not None
            await stub.delete_volume(csi.DeleteVolumeRequest(volume_id=reply.volume.volume_id))
        assert cloud.calls == {"DeleteAccessPoint": 3}
        assert cloud.access_points_by_id == {}
        # Deleted behind our back: EFS answers NotFound, and the delete still succeeds.
        gone = await stub.create_volume(create_request(name="pv-gone"))
        assert gone.volume is not None
        cloud.access_points_by_id.clear()
        cloud.calls.clear()
        await stub.delete_volume(csi.DeleteVolumeRequest(volume_id=gone.volume.volume_id))
        assert cloud.calls == {"DeleteAccessPoint": 1}


@pytest.mark.asyncio
async def test_reuse_access_point_by_pvc(harness: Harness) -> None:
    first = await harness.stub.create_volume(create_request(reuseAccessPoint="true"))
    again = await harness.stub.create_volume(create_request(
        name="pv-new", reuseAccessPoint="true", extra={"csi.storage.k8s.io/pv/name": "pv-new"}))
    assert first.volume is not None and again.volume is not None
    assert first.volume.volume_id == again.volume.volume_id
    status, message = await code_of(harness.stub.create_volume(create_request(
        name="pv-other", reuseAccessPoint="true", gidRangeStart="5000", gidRangeEnd="6000")))
    assert status == Status.ALREADY_EXISTS and "outside 5000-6000" in message
    status, message = await code_of(harness.stub.create_volume(create_request(
        name="pv-x", reuseAccessPoint="true", extra={"csi.storage.k8s.io/pvc/name": ""})))
    assert status == Status.INVALID_ARGUMENT and "reuseAccessPoint" in message


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


@pytest.mark.asyncio
async def test_capabilities_expand_validate_and_unimplemented(harness: Harness) -> None:
    caps = await harness.stub.controller_get_capabilities(csi.ControllerGetCapabilitiesRequest())
    kinds = {c.rpc.type for c in caps.capabilities if c.rpc}
    assert kinds == {csi.ControllerServiceCapabilityRpcType.CREATE_DELETE_VOLUME,
                     csi.ControllerServiceCapabilityRpcType.EXPAND_VOLUME}
    created = await harness.stub.create_volume(create_request())
    assert created.volume is not None
    volume_id = created.volume.volume_id
    expanded = await harness.stub.controller_expand_volume(csi.ControllerExpandVolumeRequest(
        volume_id=volume_id, capacity_range=csi.CapacityRange(required_bytes=10 << 30)))
    assert (expanded.capacity_bytes, expanded.node_expansion_required) == (10 << 30, False)
    valid = await harness.stub.validate_volume_capabilities(
        csi.ValidateVolumeCapabilitiesRequest(volume_id=volume_id,
                                              volume_capabilities=[capability()]))
    assert valid.confirmed is not None
    block = await harness.stub.validate_volume_capabilities(
        csi.ValidateVolumeCapabilitiesRequest(volume_id=volume_id,
                                              volume_capabilities=[capability(block=True)]))
    assert block.confirmed is None and "block" in block.message
    status, _ = await code_of(harness.stub.validate_volume_capabilities(
        csi.ValidateVolumeCapabilitiesRequest(volume_id=f"{FS}::fsap-0123456789abcdef",
                                              volume_capabilities=[capability()])))
    assert status == Status.NOT_FOUND
    status, _ = await code_of(harness.stub.list_volumes(csi.ListVolumesRequest()))
    assert status == Status.UNIMPLEMENTED


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


REUSE = {"reuseAccessPoint": "true"}


@pytest.mark.asyncio
async def test_reuse_confirms_the_access_point_still_exists(harness: Harness) -> None:
    """Another controller deleted the PVC's access point: a new one is made, never the
    deleted one answered from the inventory."""
    first = await harness.stub.create_volume(create_request(**REUSE))
    assert first.volume is not None
    [gone] = harness.cloud.access_points_by_id
    del harness.cloud.access_points_by_id[gone]  # deleted behind our back
    again = await harness.stub.create_volume(create_request(name="pv-2", **REUSE))
    assert again.volume is not None and not again.volume.volume_id.endswith(gone)
    [made] = harness.cloud.access_points_by_id.values()
    assert again.volume.volume_id.endswith(made.access_point_id)
    assert harness.cloud.calls["CreateAccessPoint"] == 2


@pytest.mark.asyncio
async def test_repeated_create_confirms_its_access_point_still_exists(harness: Harness) -> None:
    await harness.stub.create_volume(create_request())
    harness.cloud.access_points_by_id.clear()
    again = await harness.stub.create_volume(create_request())
    assert again.volume is not None
    [made] = harness.cloud.access_points_by_id.values()
    assert again.volume.volume_id.endswith(made.access_point_id)


def reference_made(cloud: FakeCloud, pvc_name: str, root: str, gid: int = 1500) -> str:
    """An access point as the reference driver makes it for reuseAccessPoint: its client
    token is the SHA-256 of the PVC name alone, and it has no namespace tag."""
    token = hashlib.sha256(pvc_name.encode()).hexdigest()
    return cloud.add_existing(AccessPointRequest(
        FS, token, root, PosixUser(gid, gid), CreationInfo(gid, gid, "700"),
        tags={"efs.csi.aws.com/cluster": "true"})).access_point_id


@pytest.mark.asyncio
async def test_reuse_adopts_the_reference_drivers_access_point_only_with_proof(
        harness: Harness) -> None:
    """Its token names the PVC but not the namespace: without proof (see
    tests/controller/test_reuse_adoption.py for the proofs) this PVC gets its own."""
    legacy = reference_made(harness.cloud, "data", "/dyn/pvc-1234")
    reply = await harness.stub.create_volume(create_request(**REUSE))
    assert reply.volume is not None and legacy not in reply.volume.volume_id
    [made] = [ap for ap in harness.cloud.access_points_by_id.values()
              if ap.access_point_id != legacy]
    assert made.client_token == "team/data" and made.root_path != "/dyn/pvc-1234"


@pytest.mark.asyncio
async def test_reuse_leaves_a_reference_access_point_of_another_storage_class_alone(
        harness: Harness) -> None:
    legacy = reference_made(harness.cloud, "data", "/elsewhere/pvc-1234")  # not in /dyn
    reply = await harness.stub.create_volume(create_request(**REUSE))
    assert reply.volume is not None and legacy not in reply.volume.volume_id
    assert harness.cloud.calls["CreateAccessPoint"] == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(("change", "named"), [
    ({"directoryPerms": "755"}, "permissions"),
    ({"basePath": "/other"}, "path"),
    ({"uid": "4242"}, "uid"),
    ({"gidRangeStart": "3000", "gidRangeEnd": "4000"}, "outside"),
])
async def test_same_name_with_incompatible_parameters_is_already_exists(
        harness: Harness, change: dict[str, str], named: str) -> None:
    await harness.stub.create_volume(create_request())
    status, message = await code_of(harness.stub.create_volume(create_request(**change)))
    assert status == Status.ALREADY_EXISTS and named in message, message
    assert harness.cloud.calls["CreateAccessPoint"] == 1


OTHER_FS = "fs-87654321"


@pytest.mark.asyncio
@pytest.mark.parametrize("named", [False, True])
async def test_same_name_on_another_file_system_names_where_the_volume_is(
        harness: Harness, named: bool) -> None:
    harness.cloud.name_conflicts = named
    harness.cloud.add_file_system(FileSystem(OTHER_FS))
    first = await harness.stub.create_volume(create_request())
    assert first.volume is not None
    status, message = await code_of(harness.stub.create_volume(
        create_request(fileSystemId=OTHER_FS)))
    assert status == Status.ALREADY_EXISTS
    assert FS in message and OTHER_FS in message and "unique per account" in message
    # A controller that never saw the first file system learns it from EFS's refusal.
    fresh = ControllerService(provisioner(harness.cloud, GidAllocator(access_point_limit=100)))
    async with ChannelFor([instrument(fresh, InFlight())]) as channel:
        status, message = await code_of(csi.ControllerStub(channel).create_volume(
            create_request(fileSystemId=OTHER_FS)))
    assert status == Status.ALREADY_EXISTS and OTHER_FS in message
    # When EFS names the access point, so does the answer; else it says where to look.
    assert (FS in message) if named else ("another file system" in message)
    assert len(harness.cloud.access_points_by_id) == 1


@dataclass
class Codes:
    seen: list[tuple[str, Status]]

    def observe(self, method: str, code: Status, seconds: float) -> None:
        self.seen.append((method, code))


@pytest.mark.asyncio
async def test_a_passed_deadline_is_counted_as_deadline_exceeded_not_cancelled() -> None:
    """grpclib cancels the handler at the client's deadline; what the log line and the
    metrics say must be what the client got: DEADLINE_EXCEEDED. A client that goes away
    before its deadline is CANCELLED."""
    cloud = FakeCloud(FS)
    cloud.gate = asyncio.Event()  # EFS never answers the create
    codes = Codes([])
    service = ControllerService(provisioner(cloud, GidAllocator(access_point_limit=100)))
    async with ChannelFor([instrument(service, InFlight(), codes)]) as channel:
        stub = csi.ControllerStub(channel)
        with pytest.raises((GRPCError, TimeoutError)):
            await stub.create_volume(create_request(), timeout=0.3)
        call = asyncio.ensure_future(stub.create_volume(create_request(name="pv-2"),
                                                        timeout=30))
        while cloud.calls["CreateAccessPoint"] < 2:  # noqa: ASYNC110 - the call is in flight
            await asyncio.sleep(0.01)
        call.cancel()  # the client goes away long before its deadline
        with pytest.raises(asyncio.CancelledError):
            await call
        while len(codes.seen) < 2:  # noqa: ASYNC110 - the server side finishes
            await asyncio.sleep(0.01)
    assert codes.seen == [("CreateVolume", Status.DEADLINE_EXCEEDED),
                          ("CreateVolume", Status.CANCELLED)]


@pytest.mark.asyncio
async def test_a_volume_gone_from_another_file_system_does_not_block_the_name(
        harness: Harness) -> None:
    harness.cloud.add_file_system(FileSystem(OTHER_FS))
    await harness.stub.create_volume(create_request())
    harness.cloud.access_points_by_id.clear()  # deleted by someone else
    reply = await harness.stub.create_volume(create_request(fileSystemId=OTHER_FS))
    assert reply.volume is not None and reply.volume.volume_id.startswith(OTHER_FS)
