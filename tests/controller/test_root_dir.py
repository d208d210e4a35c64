"""--delete-access-point-root-dir: real bind mounts of a local file system, each guard, the
proof of ownership, the order of the two deletions, and the walk by file descriptor."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path, PurePosixPath

import pytest
from structlog.testing import capture_logs

from efs_csi.cloud import AccessPoint, AccessPointRequest, CreationInfo, PosixUser
from efs_csi.errors import DeadlineExceeded, PermissionDenied
from efs_csi.kube import PersistentVolumeInfo
from efs_csi.mounting.blocking import BlockingCalls
from efs_csi.mounting.commands import CommandRunner
from efs_csi.mounting.local import LocalMounter
from efs_csi.mounting.mount import MountCommands
from efs_csi_controller import root_dir
from efs_csi_controller.app import ROOT_MOUNT_OPTIONS, root_directory_remover
from efs_csi_controller.config import RootDirectories
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.provisioning import Provisioner
from efs_csi_controller.root_dir import RootDirectoryRemover, _remove_tree
from efs_csi_controller.tags import BASE_PATH_TAG, CLUSTER_TAG, PV_NAME_TAG, tag_value
from testbed.fake_cloud import FakeCloud
from tests.support.ci import require_root
from tests.support.fakes.kube import FakeKube

FS = "fs-12345678"
CLUSTER = "cluster-7f3a"


class DenyingCloud(FakeCloud):
    """EFS as IAM leaves it for an access point the policy does not cover: DeleteAccessPoint
    is refused (a fake: IAM cannot run here; tests/chart/test_docs.py checks the policy)."""

    async def delete_access_point(self, access_point_id: str) -> None:
        self.calls["DeleteAccessPoint"] += 1
        raise PermissionDenied("EFS DeleteAccessPoint failed: AccessDeniedException")


def setup(tmp_path: Path, *, mounts: bool = True, kube: FakeKube | None = None,
          cloud: FakeCloud | None = None) -> tuple[FakeCloud, Provisioner, Path, Path]:
    """A provisioner that removes root directories through real bind mounts (root only),
    or, with ``mounts=False``, one whose guards must refuse before mounting anything."""
    if mounts:
        require_root()
    root = tmp_path / "efs"
    fs_dir = root / FS
    fs_dir.mkdir(parents=True)
    work = tmp_path / "work"
    mounter = LocalMounter(root, MountCommands(CommandRunner(), 30, 30), BlockingCalls())
    cloud = cloud or FakeCloud(FS)
    provisioner = Provisioner(
        clouds=cloud, allocator=GidAllocator(access_point_limit=100),
        kube=kube, extra_tags={}, root_dirs=RootDirectoryRemover(mounter, work_dir=work),
        cluster_id=CLUSTER)
    return cloud, provisioner, fs_dir, work


def access_point(cloud: FakeCloud, root_path: str, fs_dir: Path, *,
                 base_path: str = "/dyn", make_dir: bool = True, cluster: str | None = CLUSTER,
                 pv_name: str | None = None) -> AccessPoint:
    """An access point as the driver makes it (cluster tag, PV-name tag), its directory
    holding a file."""
    if make_dir:
        (fs_dir / root_path.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (fs_dir / root_path.lstrip("/") / "data.txt").write_text("payload")
    tags = {BASE_PATH_TAG: base_path}
    if cluster is not None:
        tags[CLUSTER_TAG] = cluster
    tags[PV_NAME_TAG] = pv_name or "pv" + root_path.replace("/", "-")
    return cloud.add_existing(AccessPointRequest(
        FS, f"token{root_path}", root_path, PosixUser(1, 1), CreationInfo(1, 1, "700"),
        tags=tags))


def released_pv(access_point: AccessPoint, *, phase: str = "Released",
                handle: str | None = None, reclaim: str = "Delete",
                deleting: bool = False) -> PersistentVolumeInfo:
    return PersistentVolumeInfo(
        name=access_point.tags[PV_NAME_TAG], driver="efs.csi.aws.com",
        volume_handle=handle or f"{FS}::{access_point.access_point_id}",
        reclaim_policy=reclaim, phase=phase, deleting=deleting)


def kept_because(logs: list[dict[str, object]]) -> str:
    return " ".join(str(entry["reason"]) for entry in logs
                    if entry["event"] == "kept access point directory")


def no_mounts_left(work: Path) -> bool:
    return str(work) not in Path("/proc/self/mountinfo").read_text()


@pytest.mark.slow  # real mounts, as root
@pytest.mark.asyncio
async def test_directory_is_removed_with_the_access_point(tmp_path: Path) -> None:
    cloud, provisioner, fs_dir, work = setup(tmp_path)
    doomed = access_point(cloud, "/dyn/pv-a", fs_dir)
    access_point(cloud, "/dyn/pv-b", fs_dir)
    await provisioner.delete(f"{FS}::{doomed.access_point_id}", {})
    assert not (fs_dir / "dyn/pv-a").exists()
    assert (fs_dir / "dyn/pv-b/data.txt").read_text() == "payload"
    assert doomed.access_point_id not in cloud.access_points_by_id
    assert no_mounts_left(work) and list(work.iterdir()) == []


@pytest.mark.asyncio
@pytest.mark.parametrize(("doomed_root", "other_root", "base_path"), [
    ("/", None, "/dyn"),                   # never the file system root
    ("/dyn", None, "/dyn"),                # never basePath itself
    ("/team(a)", None, tag_value("/team(a)")),  # ... also when its tag had to be escaped
    ("/dyn/shared", "/dyn/shared", "/dyn"),  # never a directory another access point uses
    ("/dyn/outer", "/dyn/outer/inner", "/dyn"),  # ... or one that contains another's
    ("/dyn/outer/inner", "/dyn/outer", "/dyn"),  # ... or one inside another's
])
async def test_guards_keep_the_directory(tmp_path: Path, doomed_root: str,
                                         other_root: str | None, base_path: str) -> None:
    # Refused before any mount: were it not, the fast tier's guard would fail the test.
    cloud, provisioner, fs_dir, work = setup(tmp_path, mounts=False)
    if other_root is not None:
        access_point(cloud, other_root, fs_dir, pv_name="pv-other")
    doomed = access_point(cloud, doomed_root, fs_dir, base_path=base_path)
    await provisioner.delete(f"{FS}::{doomed.access_point_id}", {})
    assert (fs_dir / doomed_root.lstrip("/") / "data.txt").read_text() == "payload"
    # The access point itself is still deleted: a PV is never stuck on a kept directory.
    assert doomed.access_point_id not in cloud.access_points_by_id
    assert no_mounts_left(work)


# --- proof of ownership ----------------------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize(("cluster", "pv_name", "why"), [
    (None, "pv-x", "no efs.csi.aws.com/cluster tag"),   # made by hand, or the tag was dropped
    ("another-cluster", "pv-x", "another cluster"),    # another cluster's access point
    ("true", "pv-x", "every cluster shared"),            # older release, nothing vouches for it
])
async def test_the_tags_must_prove_the_access_point_is_this_clusters(
        tmp_path: Path, cluster: str | None, pv_name: str, why: str) -> None:
    """Review finding #3: an untagged access point on /payroll lost its directory."""
    cloud, provisioner, fs_dir, work = setup(tmp_path, mounts=False)
    doomed = access_point(cloud, "/payroll", fs_dir, cluster=cluster, pv_name=pv_name,
                          base_path="/")
    with capture_logs() as logs:
        await provisioner.delete(f"{FS}::{doomed.access_point_id}", {})
    assert (fs_dir / "payroll" / "data.txt").read_text() == "payload"
    assert doomed.access_point_id not in cloud.access_points_by_id
    assert why in kept_because(logs)
    assert no_mounts_left(work)


@pytest.mark.asyncio
@pytest.mark.parametrize(("pv", "why"), [
    ("bound", "not released or being deleted"),   # a hand-made PV names a live volume's AP
    ("missing", "does not exist"),
    ("other-handle", "names another volume"),
    ("retain", "reclaim policy Retain"),
    ("other-driver", "is not a volume of efs.csi.aws.com"),
])
async def test_in_a_cluster_the_pv_the_access_point_was_made_for_must_be_the_one_deleted(
        tmp_path: Path, pv: str, why: str) -> None:
    kube = FakeKube()
    cloud, provisioner, fs_dir, work = setup(tmp_path, mounts=False, kube=kube)
    victim = access_point(cloud, "/dyn/victim", fs_dir, pv_name="pvc-victim")
    volumes = {
        "bound": released_pv(victim, phase="Bound"),
        "other-handle": released_pv(victim, handle=f"{FS}::fsap-99999999"),
        "retain": released_pv(victim, reclaim="Retain"),
        "other-driver": PersistentVolumeInfo("pvc-victim", "nfs.csi.k8s.io",
                                             f"{FS}::{victim.access_point_id}", "Delete",
                                             "Released"),
    }
    if pv in volumes:
        kube.volumes["pvc-victim"] = volumes[pv]
    # DeleteVolume for a PV that names the victim's access point.
    with capture_logs() as logs:
        await provisioner.delete(f"{FS}::{victim.access_point_id}", {})
    assert (fs_dir / "dyn/victim/data.txt").read_text() == "payload"
    if pv == "missing":  # a volume whose PV was never saved: its access point goes
        assert why in kept_because(logs)
        assert victim.access_point_id not in cloud.access_points_by_id
    else:  # the PV it was made for lives: another PV names it, and it stays whole
        assert why in " ".join(str(entry["reason"]) for entry in logs if entry["event"]
                               == "kept access point: the PV being deleted did not create it")
        assert victim.access_point_id in cloud.access_points_by_id
    assert no_mounts_left(work)


@pytest.mark.slow  # real mounts, as root
@pytest.mark.asyncio
@pytest.mark.parametrize(("cluster", "pv"), [
    (CLUSTER, {"phase": "Released"}),
    (CLUSTER, {"phase": "Bound", "deleting": True}),  # a bound PV deleted (reclaim honoured)
    ("true", {"phase": "Released"}),  # an older release's access point: its PV vouches for it
])
async def test_a_released_pv_of_this_cluster_has_its_directory_removed(
        tmp_path: Path, cluster: str, pv: dict[str, object]) -> None:
    kube = FakeKube()
    cloud, provisioner, fs_dir, work = setup(tmp_path, kube=kube)
    doomed = access_point(cloud, "/dyn/pv-a", fs_dir, cluster=cluster)
    kube.volumes[doomed.tags[PV_NAME_TAG]] = released_pv(doomed, **pv)  # type: ignore[arg-type]
    await provisioner.delete(f"{FS}::{doomed.access_point_id}", {})
    assert not (fs_dir / "dyn/pv-a").exists()
    assert no_mounts_left(work)


@pytest.mark.asyncio
async def test_the_directory_stays_when_delete_access_point_is_refused(tmp_path: Path) -> None:
    """DeleteAccessPoint comes first: when IAM refuses it (an access point the policy does not
    let this controller delete), the directory was never touched."""
    cloud = DenyingCloud(FS)
    _cloud, provisioner, fs_dir, work = setup(tmp_path, mounts=False, cloud=cloud)
    doomed = access_point(cloud, "/dyn/pv-a", fs_dir)
    with pytest.raises(PermissionDenied):
        await provisioner.delete(f"{FS}::{doomed.access_point_id}", {})
    assert cloud.calls["DeleteAccessPoint"] == 1
    assert (fs_dir / "dyn/pv-a/data.txt").read_text() == "payload"
    assert not work.exists() or list(work.iterdir()) == []  # nothing was even mounted


@pytest.mark.slow  # real mounts, as root
@pytest.mark.asyncio
async def test_the_access_point_is_gone_before_its_directory_is_touched(tmp_path: Path) -> None:
    require_root()
    root, work = tmp_path / "efs", tmp_path / "work"
    (root / FS).mkdir(parents=True)
    cloud = FakeCloud(FS)
    seen: list[bool] = []

    def remove_after_looking(mount_root: Path, relative: PurePosixPath) -> str | None:
        seen.append(doomed.access_point_id in cloud.access_points_by_id)
        return _remove_tree(mount_root, relative)

    remover = RootDirectoryRemover(LocalMounter(root, MountCommands(CommandRunner(), 30, 30),
                                                BlockingCalls()), work_dir=work,
                                   remove_tree=remove_after_looking)
    provisioner = Provisioner(
        clouds=cloud, allocator=GidAllocator(access_point_limit=100),
        kube=None, extra_tags={}, root_dirs=remover, cluster_id=CLUSTER)
    doomed = access_point(cloud, "/dyn/pv-a", root / FS)
    await provisioner.delete(f"{FS}::{doomed.access_point_id}", {})
    assert seen == [False]
    assert not (root / FS / "dyn/pv-a").exists()


# --- the walk --------------------------------------------------------------------------------

@pytest.mark.slow  # real mounts, as root
@pytest.mark.asyncio
async def test_never_across_a_symlink(tmp_path: Path) -> None:
    cloud, provisioner, fs_dir, work = setup(tmp_path)
    precious = fs_dir / "precious"
    precious.mkdir()
    (precious / "pv-a").mkdir()
    (precious / "pv-a" / "data.txt").write_text("payload")
    (fs_dir / "dyn").symlink_to(precious)  # /dyn now leads somewhere else
    doomed = access_point(cloud, "/dyn/pv-a", fs_dir, make_dir=False)
    await provisioner.delete(f"{FS}::{doomed.access_point_id}", {})
    assert (precious / "pv-a" / "data.txt").read_text() == "payload"
    assert no_mounts_left(work)


def test_a_parent_swapped_for_a_symlink_after_the_checks_redirects_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review finding #13: the parent is swapped for a symlink to precious data at the worst
    moment, after every check and just before the tree is removed. A walk by path would then
    remove the precious data; the walk by descriptor removes the directory it checked."""
    mount_root = tmp_path / "fs"
    (mount_root / "dyn" / "pv-a").mkdir(parents=True)
    (mount_root / "dyn" / "pv-a" / "data.txt").write_text("doomed")
    precious = tmp_path / "fs" / "precious"
    (precious / "pv-a").mkdir(parents=True)
    (precious / "pv-a" / "data.txt").write_text("payload")
    real_rmtree = shutil.rmtree
    swaps: list[str] = []

    def swap_then_remove(path: str | Path, *args: object, **kwargs: object) -> None:
        (mount_root / "dyn").rename(mount_root / "dyn-checked")
        (mount_root / "dyn").symlink_to(precious)
        swaps.append(str(path))
        real_rmtree(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(root_dir.shutil, "rmtree", swap_then_remove)
    assert _remove_tree(mount_root, PurePosixPath("dyn/pv-a")) is None
    assert swaps, "the removal ran"
    assert (precious / "pv-a" / "data.txt").read_text() == "payload"
    assert not (mount_root / "dyn-checked" / "pv-a").exists()  # what was checked is gone


@pytest.mark.parametrize(("layout", "relative", "why"), [
    ("link-parent", "dyn/pv-a", "dyn is a symlink or not a directory"),
    ("link-leaf", "dyn/pv-a", "dyn/pv-a is a symlink"),
    ("file-leaf", "dyn/pv-a", "it is not a directory"),
    ("plain", "dyn/../precious", "its path has . or .. components"),
])
def test_the_walk_refuses_links_files_and_dot_dot(tmp_path: Path, layout: str, relative: str,
                                                   why: str) -> None:
    mount_root = tmp_path / "fs"
    precious = mount_root / "precious"
    precious.mkdir(parents=True)
    (precious / "data.txt").write_text("payload")
    if layout == "link-parent":
        (mount_root / "dyn").symlink_to(mount_root)
        (mount_root / "pv-a").mkdir()
    elif layout == "link-leaf":
        (mount_root / "dyn").mkdir()
        (mount_root / "dyn" / "pv-a").symlink_to(precious)
    elif layout == "file-leaf":
        (mount_root / "dyn").mkdir()
        (mount_root / "dyn" / "pv-a").write_text("not a directory")
    assert _remove_tree(mount_root, PurePosixPath(relative)) == why
    assert (precious / "data.txt").read_text() == "payload"


@pytest.mark.slow  # real mounts, as root
@pytest.mark.asyncio
async def test_missing_directory_is_fine(tmp_path: Path) -> None:
    cloud, provisioner, fs_dir, _work = setup(tmp_path)
    doomed = access_point(cloud, "/dyn/never-mounted", fs_dir, make_dir=False)
    await provisioner.delete(f"{FS}::{doomed.access_point_id}", {})
    assert cloud.access_points_by_id == {}


def test_the_efs_root_mount_is_encrypted_and_iam_authenticated() -> None:
    """Review finding #14: efs-utils mounts the root with tls and iam, so a file system policy
    can grant root access to the controller's role alone."""
    assert ROOT_MOUNT_OPTIONS == ("tls", "iam")
    remover = root_directory_remover(RootDirectories(mount_backend="efs"), "us-east-1")
    assert remover._options == ("tls", "iam", "region=us-east-1")
    assert root_directory_remover(RootDirectories(mount_backend="efs"))._options == (
        "tls", "iam")


@pytest.mark.slow  # real mounts, as root
@pytest.mark.asyncio
async def test_removal_is_time_bounded_off_the_default_executor_and_never_doubled(
        tmp_path: Path) -> None:
    """A removal that blocks (as on a dead NFS server: a stand-in, which a local file system
    cannot be made to do) fails DeleteVolume with DEADLINE_EXCEEDED in time, detaches the root
    lazily, and refuses a retry while it still runs. The access point is already deleted (it
    goes first); once the removal finishes, the retry succeeds with the directory gone."""
    require_root()
    root, work = tmp_path / "efs", tmp_path / "work"
    (root / FS).mkdir(parents=True)
    commands = MountCommands(CommandRunner(), 30, 30)
    release, returned = threading.Event(), threading.Event()
    threads: list[str] = []

    def blocking_remove(mount_root: Path, relative: PurePosixPath) -> str | None:
        threads.append(threading.current_thread().name)
        release.wait(30)
        try:
            return _remove_tree(mount_root, relative)
        finally:
            returned.set()

    cloud = FakeCloud(FS)
    remover = RootDirectoryRemover(LocalMounter(root, commands, BlockingCalls()), work_dir=work,
                                   time_limit=0.3, detach=commands.lazy_unmount,
                                   remove_tree=blocking_remove)
    provisioner = Provisioner(
        clouds=cloud, allocator=GidAllocator(access_point_limit=100),
        kube=None, extra_tags={}, root_dirs=remover, cluster_id=CLUSTER)
    doomed = access_point(cloud, "/dyn/pv-a", root / FS)
    volume_id = f"{FS}::{doomed.access_point_id}"
    try:
        with pytest.raises(DeadlineExceeded, match=r"did not finish within 0\.3s"):
            await provisioner.delete(volume_id, {})
        assert doomed.access_point_id not in cloud.access_points_by_id  # deleted first
        assert no_mounts_left(work)  # detached lazily although the walk goes on
        with pytest.raises(DeadlineExceeded, match="still running"):
            await provisioner.delete(volume_id, {})
        assert len(threads) == 1 and threads[0].startswith("rmtree:")  # its own thread
    finally:
        release.set()
    assert await asyncio.to_thread(returned.wait, 30)  # the abandoned walk has returned
    await provisioner.delete(volume_id, {})
    assert not (root / FS / "dyn/pv-a").exists()
    assert no_mounts_left(work) and list(work.iterdir()) == []
    await provisioner.delete(volume_id, {})  # and again: nothing left to finish
