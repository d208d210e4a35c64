"""DeleteVolume never deletes an access point the PV being deleted did not create, over gRPC
(in-memory channel, in-memory EFS, the Kubernetes API in memory): a PV that names another
volume's access point of the same cluster (forged by someone who may create PVs, or a
hand-made copy) is answered OK and deletes nothing, with or without
--delete-access-point-root-dir; the PV an access point was made for, once released or being
deleted, deletes it; so does a volume whose PV was never saved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import pytest_asyncio
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor
from structlog.testing import capture_logs

from efs_csi import csi
from efs_csi.cloud import AccessPoint, AccessPointRequest, CreationInfo, PosixUser
from efs_csi.errors import PermissionDenied
from efs_csi.kube import PersistentVolumeInfo
from efs_csi.mounting.blocking import BlockingCalls
from efs_csi.mounting.commands import CommandRunner
from efs_csi.mounting.local import LocalMounter
from efs_csi.mounting.mount import MountCommands
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.provisioning import Provisioner
from efs_csi_controller.root_dir import RootDirectoryRemover
from efs_csi_controller.service import ControllerService
from efs_csi_controller.tags import CLUSTER_TAG, PV_NAME_TAG
from testbed.csi_builders import mount_capability
from testbed.fake_cloud import FakeCloud
from tests.support.ci import require_root
from tests.support.fakes.kube import FakeKube

FS = "fs-12345678"
CLUSTER = "cluster-7f3a"
KEPT = "kept access point: the PV being deleted did not create it"


@dataclass
class Lab:
    cloud: FakeCloud
    kube: FakeKube
    stub: csi.ControllerStub

    async def provision(self, pv: str, **params: str) -> tuple[str, AccessPoint]:
        """CreateVolume as csi-provisioner sends it, and the PV it then saves (Bound)."""
        reply = await self.stub.create_volume(csi.CreateVolumeRequest(
            name=pv, capacity_range=csi.CapacityRange(required_bytes=1 << 30),
            volume_capabilities=[mount_capability()],
            parameters={"provisioningMode": "efs-ap", "fileSystemId": FS,
                        "directoryPerms": "700", "csi.storage.k8s.io/pv/name": pv,
                        "csi.storage.k8s.io/pvc/name": f"claim-{pv}",
                        "csi.storage.k8s.io/pvc/namespace": "tenant", **params}))
        assert reply.volume is not None
        handle = reply.volume.volume_id
        self.kube.volumes[pv] = PersistentVolumeInfo(
            name=pv, driver="efs.csi.aws.com", volume_handle=handle, reclaim_policy="Delete",
            phase="Bound")
        return handle, self.cloud.access_points_by_id[handle.rsplit(":", 1)[1]]

    def exists(self, access_point: AccessPoint) -> bool:
        return access_point.access_point_id in self.cloud.access_points_by_id


@pytest_asyncio.fixture(params=["plain", pytest.param("root-dirs", marks=pytest.mark.slow)])
async def lab(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Lab]:
    """A controller in a cluster (it reads PVs), without and with
    --delete-access-point-root-dir (real bind mounts, which the forged case never reaches)."""
    cloud, kube = FakeCloud(FS), FakeKube()
    root_dirs = None
    if request.param == "root-dirs":
        require_root()  # the deletions that do happen remove directories through bind mounts
        (tmp_path / "efs" / FS).mkdir(parents=True)
        mounter = LocalMounter(tmp_path / "efs", MountCommands(CommandRunner(), 30, 30),
                               BlockingCalls())
        root_dirs = RootDirectoryRemover(mounter, work_dir=tmp_path / "work")
    provisioner = Provisioner(clouds=cloud,
                              allocator=GidAllocator(access_point_limit=100), kube=kube,
                              extra_tags={}, root_dirs=root_dirs, cluster_id=CLUSTER)
    async with ChannelFor([instrument(ControllerService(provisioner), CallsInFlight())]) as channel:
        yield Lab(cloud, kube, csi.ControllerStub(channel))


def forged_delete(handle: str) -> csi.DeleteVolumeRequest:
    """What csi-provisioner sends for a released PV that a person wrote naming ``handle``:
    DeleteVolume carries nothing but the handle (and secrets)."""
    return csi.DeleteVolumeRequest(volume_id=handle)


@pytest.mark.asyncio
async def test_a_forged_pv_naming_a_bound_volumes_access_point_deletes_nothing(
        lab: Lab) -> None:
    handle, victim = await lab.provision("pvc-victim")
    assert victim.tags[CLUSTER_TAG] == CLUSTER  # this very cluster's access point
    with capture_logs() as logs:
        await lab.stub.delete_volume(forged_delete(handle))  # answered OK: nothing of its own
    assert lab.exists(victim)
    assert lab.cloud.calls["DeleteAccessPoint"] == 0
    [kept] = [entry for entry in logs if entry["event"] == KEPT]
    assert kept["access_point_id"] == victim.access_point_id
    assert "PV pvc-victim is Bound, not released or being deleted" in str(kept["reason"])

    # The victim's own PV, released, deletes it.
    lab.kube.volumes["pvc-victim"] = replace(lab.kube.volumes["pvc-victim"], phase="Released")
    await lab.stub.delete_volume(csi.DeleteVolumeRequest(volume_id=handle))
    assert not lab.exists(victim)


@pytest.mark.asyncio
@pytest.mark.parametrize(("change", "why"), [
    ({"volume_handle": f"{FS}::fsap-0123456789abcdef0"}, "names another volume"),
    ({"reclaim_policy": "Retain", "phase": "Released"}, "reclaim policy Retain"),
    ({"driver": "nfs.csi.k8s.io"}, "is not a volume of efs.csi.aws.com"),
])
async def test_while_the_pv_it_was_made_for_is_not_the_one_being_deleted_it_stays(
        lab: Lab, change: dict[str, str], why: str) -> None:
    """csi-provisioner deletes only a PV of this driver, naming this access point, reclaim
    policy Delete, released or being deleted: any other state of the PV the access point was
    made for means the DeleteVolume comes from another PV."""
    handle, victim = await lab.provision("pvc-victim")
    lab.kube.volumes["pvc-victim"] = replace(lab.kube.volumes["pvc-victim"],
                                             **change)  # type: ignore[arg-type]
    with capture_logs() as logs:
        await lab.stub.delete_volume(forged_delete(handle))
    assert lab.exists(victim)
    assert why in " ".join(str(entry.get("reason")) for entry in logs if entry["event"] == KEPT)


@pytest.mark.asyncio
@pytest.mark.parametrize("pv", [{"phase": "Released"}, {"phase": "Failed"},
                                {"phase": "Bound", "deleting": True}])
async def test_the_pv_it_was_made_for_deletes_it(lab: Lab, pv: dict[str, object]) -> None:
    handle, own = await lab.provision("pvc-own")
    lab.kube.volumes["pvc-own"] = replace(lab.kube.volumes["pvc-own"],
                                          **pv)  # type: ignore[arg-type]
    await lab.stub.delete_volume(csi.DeleteVolumeRequest(volume_id=handle))
    assert not lab.exists(own)


@pytest.mark.asyncio
async def test_a_volume_whose_pv_was_never_saved_is_deleted(lab: Lab) -> None:
    """csi-provisioner deletes a volume it made but could not save as a PV: then no PV of that
    name exists, and the access point goes."""
    handle, orphan = await lab.provision("pvc-unsaved")
    del lab.kube.volumes["pvc-unsaved"]
    await lab.stub.delete_volume(csi.DeleteVolumeRequest(volume_id=handle))
    assert not lab.exists(orphan)


@pytest.mark.asyncio
async def test_without_a_pv_name_tag_nothing_can_vouch_and_the_access_point_goes(
        lab: Lab) -> None:
    """Made with tagging off, or by an older driver: no PV to ask (as before; IAM's cluster
    condition still guards the call in AWS)."""
    untagged = lab.cloud.add_existing(AccessPointRequest(
        FS, "older", "/older", PosixUser(7, 7), CreationInfo(7, 7, "700"),
        tags={CLUSTER_TAG: "true"}))
    assert PV_NAME_TAG not in untagged.tags
    await lab.stub.delete_volume(
        csi.DeleteVolumeRequest(volume_id=f"{FS}::{untagged.access_point_id}"))
    assert not lab.exists(untagged)


@pytest.mark.asyncio
async def test_a_forged_pv_cannot_delete_the_access_point_adopted_for_a_pvc(lab: Lab) -> None:
    """reuseAccessPoint: the PVC's own access point (the mirror of the reference driver's)
    carries its PV's name, so a forged PV naming it is refused like any other."""
    handle, mirror = await lab.provision("pvc-reused", reuseAccessPoint="true")
    await lab.stub.delete_volume(forged_delete(handle))
    assert lab.exists(mirror)


@pytest.mark.asyncio
async def test_a_controller_that_may_not_read_pvs_says_which_permission_it_needs(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    handle, own = await lab.provision("pvc-own")

    async def denied(name: str) -> PersistentVolumeInfo:
        raise PermissionDenied(f"persistentvolumes {name!r} is forbidden")

    monkeypatch.setattr(lab.kube, "read_persistent_volume", denied)
    with pytest.raises(GRPCError) as raised:
        await lab.stub.delete_volume(csi.DeleteVolumeRequest(volume_id=handle))
    assert raised.value.status == Status.PERMISSION_DENIED
    assert "get on persistentvolumes" in (raised.value.message or "")
    assert lab.exists(own)
