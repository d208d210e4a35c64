"""reuseAccessPoint and the reference driver's access points, over gRPC (in-memory channel,
in-memory EFS): equal PVC names in two namespaces never share an access point, on any path;
an access point the reference driver made (its token: the SHA-256 of the PVC name alone) is
adopted only with proof that it is this claim's, by making this PVC's own access point on its
directory and POSIX identity, so deleting the PV never deletes the reference's."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.cloud import AccessPoint, AccessPointRequest, CreationInfo, PosixUser
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.provisioning import Provisioner
from efs_csi_controller.service import ControllerService
from testbed.csi_builders import mount_capability
from testbed.fake_cloud import FakeCloud

FS = "fs-12345678"
REFERENCE_ROOT = "/dyn/pvc-0b6c"
REFERENCE_GID = 1500


@dataclass
class Lab:
    cloud: FakeCloud
    stub: csi.ControllerStub

    def access_point(self, volume: csi.Volume | None) -> AccessPoint:
        assert volume is not None
        return self.cloud.access_points_by_id[volume.volume_id.rsplit(":", 1)[1]]


@pytest_asyncio.fixture
async def lab() -> AsyncIterator[Lab]:
    cloud = FakeCloud(FS)
    provisioner = Provisioner(clouds=cloud,
                              allocator=GidAllocator(access_point_limit=100), kube=None,
                              extra_tags={}, root_dirs=None)
    async with ChannelFor([instrument(ControllerService(provisioner), CallsInFlight())]) as channel:
        yield Lab(cloud, csi.ControllerStub(channel))


def reference_made(cloud: FakeCloud, pvc_name: str = "data",
                   tags: dict[str, str] | None = None) -> AccessPoint:
    """As the reference driver makes it for reuseAccessPoint: token SHA-256(PVC name), the
    cluster tag, no namespace."""
    return cloud.add_existing(AccessPointRequest(
        FS, hashlib.sha256(pvc_name.encode()).hexdigest(), REFERENCE_ROOT,
        PosixUser(REFERENCE_GID, REFERENCE_GID), CreationInfo(REFERENCE_GID, REFERENCE_GID, "700"),
        tags={"efs.csi.aws.com/cluster": "true", **(tags or {})}))


def create(namespace: str, pv: str, pvc: str = "data", **params: str) -> csi.CreateVolumeRequest:
    return csi.CreateVolumeRequest(
        name=pv, capacity_range=csi.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[mount_capability()],
        parameters={"provisioningMode": "efs-ap", "fileSystemId": FS, "directoryPerms": "700",
                    "gidRangeStart": "1000", "gidRangeEnd": "2000", "basePath": "/dyn",
                    "reuseAccessPoint": "true", "csi.storage.k8s.io/pv/name": pv,
                    "csi.storage.k8s.io/pvc/name": pvc,
                    "csi.storage.k8s.io/pvc/namespace": namespace, **params})


async def refused(call: object) -> tuple[Status, str]:
    with pytest.raises(GRPCError) as raised:
        await call  # type: ignore[misc]
    return raised.value.status, raised.value.message or ""


@pytest.mark.asyncio
async def test_equal_pvc_names_in_two_namespaces_never_share_an_access_point(lab: Lab) -> None:
    """Every path: no reference access point; one adopted by namespace a's opt-in; one whose
    PV-name tag names a's PV. b's PVC ``data`` never gets a's access point or directory."""
    a = lab.access_point((await lab.stub.create_volume(create("a", "pv-a1"))).volume)
    b = lab.access_point((await lab.stub.create_volume(create("b", "pv-b1"))).volume)
    assert a.access_point_id != b.access_point_id and a.root_path != b.root_path
    assert (a.client_token, b.client_token) == ("a/data", "b/data")

    for proof in ({"referenceAccessPointsNamespace": "a"}, {}):
        lab.cloud.access_points_by_id.clear()
        tags = {} if proof else {"kubernetes.io/created-for/pv/name": "pv-a2"}
        reference = reference_made(lab.cloud, tags=tags)
        a = lab.access_point((await lab.stub.create_volume(create("a", "pv-a2", **proof)))
                             .volume)
        b = lab.access_point((await lab.stub.create_volume(create("b", "pv-b2", **proof)))
                             .volume)
        assert a.root_path == REFERENCE_ROOT  # a adopted it ...
        assert len({reference.access_point_id, a.access_point_id, b.access_point_id}) == 3
        assert b.root_path != REFERENCE_ROOT  # ... b did not
        assert b.posix_user is not None and b.posix_user.gid != REFERENCE_GID


@pytest.mark.asyncio
async def test_adoption_by_the_pv_name_tag_makes_this_pvs_own_access_point(lab: Lab) -> None:
    reference = reference_made(lab.cloud, tags={"kubernetes.io/created-for/pv/name": "pv-7"})
    reply = await lab.stub.create_volume(create("team", "pv-7"))
    mirror = lab.access_point(reply.volume)
    assert mirror.access_point_id != reference.access_point_id
    assert (mirror.root_path, mirror.posix_user) == (REFERENCE_ROOT, reference.posix_user)
    assert mirror.client_token == "team/data"
    assert mirror.tags["kubernetes.io/created-for/pvc/namespace"] == "team"
    # A retry finds it (it shares the reference's GID on purpose: not given up).
    again = await lab.stub.create_volume(create("team", "pv-7"))
    assert again == reply
    # Deleting the PV deletes only what it made.
    assert reply.volume is not None
    await lab.stub.delete_volume(csi.DeleteVolumeRequest(volume_id=reply.volume.volume_id))
    assert list(lab.cloud.access_points_by_id) == [reference.access_point_id]


@pytest.mark.asyncio
async def test_the_namespace_opt_in_adopts_for_that_namespace_only(lab: Lab) -> None:
    reference = reference_made(lab.cloud)
    opt_in = {"referenceAccessPointsNamespace": "team"}
    other = lab.access_point((await lab.stub.create_volume(create("other", "pv-o", **opt_in)))
                             .volume)
    assert other.root_path != REFERENCE_ROOT
    mine = lab.access_point((await lab.stub.create_volume(create("team", "pv-t", **opt_in)))
                            .volume)
    assert mine.root_path == REFERENCE_ROOT and mine.access_point_id != reference.access_point_id


@pytest.mark.asyncio
async def test_a_directory_adopted_by_one_namespace_is_never_adopted_by_another(lab: Lab
                                                                               ) -> None:
    """Two StorageClasses naming different namespaces (an operator's mistake): the first
    adoption stands, the second namespace gets its own access point."""
    reference_made(lab.cloud)
    first = lab.access_point((await lab.stub.create_volume(
        create("a", "pv-a", referenceAccessPointsNamespace="a"))).volume)
    second = lab.access_point((await lab.stub.create_volume(
        create("b", "pv-b", referenceAccessPointsNamespace="b"))).volume)
    assert first.root_path == REFERENCE_ROOT and second.root_path != REFERENCE_ROOT


@pytest.mark.asyncio
async def test_a_reference_access_point_tagged_for_another_namespace_is_not_adopted(
        lab: Lab) -> None:
    reference_made(lab.cloud, tags={"kubernetes.io/created-for/pvc/namespace": "a",
                                    "kubernetes.io/created-for/pv/name": "pv-b"})
    made = lab.access_point((await lab.stub.create_volume(
        create("b", "pv-b", referenceAccessPointsNamespace="b"))).volume)
    assert made.root_path != REFERENCE_ROOT


@pytest.mark.asyncio
async def test_no_proof_no_adoption_and_a_wrong_pv_name_is_no_proof(lab: Lab) -> None:
    reference_made(lab.cloud, tags={"kubernetes.io/created-for/pv/name": "pv-other"})
    made = lab.access_point((await lab.stub.create_volume(create("team", "pv-1"))).volume)
    assert made.root_path != REFERENCE_ROOT and made.client_token == "team/data"


@pytest.mark.asyncio
async def test_adoption_sees_an_access_point_made_seconds_ago(lab: Lab) -> None:
    """The controller listed the file system a moment ago; the reference access point made
    since then is found all the same: adoption looks in a listing made after the create began."""
    await lab.stub.create_volume(create("team", "pv-earlier", pvc="earlier"))
    reference_made(lab.cloud, tags={"kubernetes.io/created-for/pv/name": "pv-1"})
    adopted = lab.access_point((await lab.stub.create_volume(create("team", "pv-1"))).volume)
    assert adopted.root_path == REFERENCE_ROOT


@pytest.mark.asyncio
@pytest.mark.parametrize(("params", "named"), [
    ({"reuseAccessPoint": "false", "referenceAccessPointsNamespace": "team"},
     "referenceAccessPointsNamespace needs reuseAccessPoint=true"),
    ({"referenceAccessPointsNamespace": "Team_A"}, "referenceAccessPointsNamespace='Team_A'"),
])
async def test_the_opt_in_is_checked(lab: Lab, params: dict[str, str], named: str) -> None:
    status, message = await refused(lab.stub.create_volume(create("team", "pv-1", **params)))
    assert status == Status.INVALID_ARGUMENT and named in message
    assert lab.cloud.calls["CreateAccessPoint"] == 0
