"""slowfs runs on libfuse 3 on a machine that also has libfuse 2 (as many do, for AppImages),
and says plainly when libfuse 3 is missing.

The machine with both: Debian's real ``libfuse2`` package, found by the very lookup mfusepy
makes on its own (``ctypes.util.find_library("fuse")``, which finds it before libfuse 3). When
the machine has it installed, as is; otherwise it is unpacked (``apt-get download``,
``dpkg-deb -x``) into ``.cache/libfuse2`` and put on ``LD_LIBRARY_PATH`` for the server, with
the ``libfuse.so`` link its -dev package would add, so the same lookup finds it there without
installing anything on this machine for the other work that shares it. The test first shows
that mfusepy left to itself does load libfuse 2 there (the trap is set), then mounts and walks.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from efs_csi_node.usage_walk import measure_usage
from testbed.slowfs import libfuse_available, slow_mount
from testbed.slowfs.libfuse import MISSING, LibfuseMissing, load_mfusepy
from tests.support.ci import REPO, require_root, skip_or_fail
from tests.support.du import du_usage

CACHE = REPO / ".cache" / "libfuse2"
# What mfusepy does by itself: the library its own lookup picks, and its major version.
UNAIDED = ("import ctypes.util, mfusepy; "
           "print(ctypes.util.find_library('fuse'), mfusepy.fuse_version_major)")


def _unpack_debian_libfuse2() -> Path:
    """Debian's libfuse2, unpacked (not installed) into the cache; its lib directory."""
    lib = CACHE / "lib"
    if (lib / "libfuse.so.2").exists():
        return lib
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        skip_or_fail("Debian's apt-get and dpkg-deb are needed to fetch libfuse2")
    with tempfile.TemporaryDirectory(prefix="libfuse2-") as scratch:
        download = ["apt-get", "download", "-qq", "libfuse2"]
        if subprocess.run(download, cwd=scratch, capture_output=True).returncode != 0:
            if os.geteuid() != 0:
                skip_or_fail("apt-get download libfuse2 failed; apt-get update needs root")
            subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
            subprocess.run(download, cwd=scratch, check=True, capture_output=True)
        package = next(Path(scratch).glob("libfuse2_*.deb"))
        unpacked = Path(scratch) / "root"
        subprocess.run(["dpkg-deb", "-x", str(package), str(unpacked)], check=True)
        found = next(unpacked.rglob("libfuse.so.2.*"))
        lib.mkdir(parents=True, exist_ok=True)
        shutil.copy2(found, lib / found.name)
        for name in ("libfuse.so.2", "libfuse.so"):  # the soname link; the -dev package's
            (lib / name).unlink(missing_ok=True)
            (lib / name).symlink_to(found.name)
    return lib


@pytest.fixture
def libfuse2_beside_libfuse3() -> dict[str, str]:
    """The environment in which the slowfs server's process sees libfuse 2 beside libfuse 3."""
    if not libfuse_available():
        skip_or_fail("libfuse 3 and /dev/fuse are needed (make test installs fuse3)")
    installed = ctypes.util.find_library("fuse")
    env = {} if installed else {"LD_LIBRARY_PATH": str(_unpack_debian_libfuse2())}
    unaided = subprocess.run([sys.executable, "-c", UNAIDED], check=True, capture_output=True,
                             text=True, env={**os.environ, **env}).stdout.split()
    assert unaided == ["libfuse.so.2", "2"], unaided  # left to itself, mfusepy takes libfuse 2
    return env


@pytest.mark.slow  # a FUSE server process, du
def test_slowfs_serves_on_libfuse3_with_libfuse2_installed_too(
        libfuse2_beside_libfuse3: dict[str, str], tmp_path: Path) -> None:
    require_root()
    backing, mountpoint = tmp_path / "backing", tmp_path / "mnt"
    (backing / "a" / "b").mkdir(parents=True)
    (backing / "a" / "f").write_bytes(os.urandom(50_000))
    (backing / "a" / "b" / "g").write_bytes(os.urandom(9_000))
    mountpoint.mkdir()
    with slow_mount(backing, mountpoint, delay_s=0.0002, env=libfuse2_beside_libfuse3):
        assert measure_usage(mountpoint, concurrency=4) == du_usage(backing)


def test_without_libfuse3_the_server_says_what_to_install() -> None:
    def nothing(name: str) -> str | None:
        return None

    with pytest.raises(LibfuseMissing) as caught:
        load_mfusepy(find=nothing)
    assert str(caught.value) == MISSING
    assert "apt-get install fuse3" in MISSING and "libfuse 2 alone will not do" in MISSING
