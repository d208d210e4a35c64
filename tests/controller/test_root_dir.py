"""--delete-access-point-root-dir: real bind mounts of a local file system, and each guard."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path, PurePosixPath

import pytest

from efs_csi.cloud import AccessPoint, AccessPointRequest, CreationInfo, PosixUser
from efs_csi.errors import DeadlineExceeded
from efs_csi.mounting.commands import CommandRunner
from efs_csi.mounting.local import LocalMounter
from efs_csi.mounting.mount import MountCommands
from efs_csi.mounting.offloop import OffLoop
from efs_csi_controller.cross_account import CloudSelector
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.provisioning import Provisioner
from efs_csi_controller.root_dir import RootDirectoryRemover, _remove_tree
from efs_csi_controller.tags import BASE_PATH_TAG, tag_value
from tests.support.ci import require_root
from tests.support.fakes.cloud import FakeCloud

FS = "fs-12345678"


def setup(tmp_path: Path, *, mounts: bool = True) -> tuple[FakeCloud, Provisioner, Path, Path]:
    """A provisioner that removes root directories through real bind mounts (root only),
    or, with ``mounts=False``, one whose guards must refuse before mounting anything."""
    if mounts:
        require_root()
    root = tmp_path / "efs"
    fs_dir = root / FS
    fs_dir.mkdir(parents=True)
    work = tmp_path / "work"
    mounter = LocalMounter(root, MountCommands(CommandRunner(), 30, 30), OffLoop())
    cloud = FakeCloud(FS)
    provisioner = Provisioner(
        clouds=CloudSelector(cloud, None), allocator=GidAllocator(access_point_limit=100),
        kube=None, extra_tags={}, root_dirs=RootDirectoryRemover(mounter, work_dir=work))
    return cloud, provisioner, fs_dir, work


def access_point(cloud: FakeCloud, root_path: str, fs_dir: Path, *,
                 base_path: str = "/dyn", make_dir: bool = True) -> AccessPoint:
    if make_dir:
        (fs_dir / root_path.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (fs_dir / root_path.lstrip("/") / "data.txt").write_text("payload")
    return cloud.add_existing(AccessPointRequest(
        FS, f"token{root_path}", root_path, PosixUser(1, 1), CreationInfo(1, 1, "700"),
        tags={BASE_PATH_TAG: base_path}))


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
        access_point(cloud, other_root, fs_dir)
    doomed = access_point(cloud, doomed_root, fs_dir, base_path=base_path)
    await provisioner.delete(f"{FS}::{doomed.access_point_id}", {})
    assert (fs_dir / doomed_root.lstrip("/") / "data.txt").read_text() == "payload"
    # The access point itself is still deleted: a PV is never stuck on a kept directory.
    assert doomed.access_point_id not in cloud.access_points_by_id
    assert no_mounts_left(work)


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


@pytest.mark.slow  # real mounts, as root
@pytest.mark.asyncio
async def test_missing_directory_is_fine(tmp_path: Path) -> None:
    cloud, provisioner, fs_dir, _work = setup(tmp_path)
    doomed = access_point(cloud, "/dyn/never-mounted", fs_dir, make_dir=False)
    await provisioner.delete(f"{FS}::{doomed.access_point_id}", {})
    assert cloud.access_points_by_id == {}


@pytest.mark.slow  # real mounts, as root
@pytest.mark.asyncio
async def test_removal_is_time_bounded_off_the_default_executor_and_never_doubled(
        tmp_path: Path) -> None:
    """A removal that blocks (as on a dead NFS server: a stand-in, which a local file system
    cannot be made to do) fails DeleteVolume with DEADLINE_EXCEEDED in time, keeps the access
    point for the retry, detaches the root lazily, and refuses a retry while it still runs.
    Once it finishes, the retry deletes directory and access point."""
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
    remover = RootDirectoryRemover(LocalMounter(root, commands, OffLoop()), work_dir=work,
                                   time_limit=0.3, detach=commands.lazy_unmount,
                                   remove_tree=blocking_remove)
    provisioner = Provisioner(
        clouds=CloudSelector(cloud, None), allocator=GidAllocator(access_point_limit=100),
        kube=None, extra_tags={}, root_dirs=remover)
    doomed = access_point(cloud, "/dyn/pv-a", root / FS)
    volume_id = f"{FS}::{doomed.access_point_id}"
    try:
        with pytest.raises(DeadlineExceeded, match=r"did not finish within 0\.3s"):
            await provisioner.delete(volume_id, {})
        assert doomed.access_point_id in cloud.access_points_by_id  # kept for the retry
        assert no_mounts_left(work)  # detached lazily although the walk goes on
        with pytest.raises(DeadlineExceeded, match="still running"):
            await provisioner.delete(volume_id, {})
        assert len(threads) == 1 and threads[0].startswith("offloop:")  # its own thread
    finally:
        release.set()
    assert await asyncio.to_thread(returned.wait, 30)  # the abandoned walk has returned
    await provisioner.delete(volume_id, {})
    assert cloud.access_points_by_id == {} and not (root / FS / "dyn/pv-a").exists()
    assert no_mounts_left(work) and list(work.iterdir()) == []
