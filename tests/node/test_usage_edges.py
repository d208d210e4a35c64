"""The usage walk gives a figure like du's whatever the tree holds: subtrees it may not read
(EFS's root squashing), a tree deeper than PATH_MAX, and a volume bind-mounted inside itself.
Judged against the real ``du`` under the same privileges (tests/support/du.py), on real trees;
root only (another uid's files, bind mounts, privileges dropped with setpriv)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from efs_csi import csi
from efs_csi_node.usage_walk import Usage, measure_usage
from testbed.csi_builders import stage_request
from testbed.processes import start_binary
from tests.support.ci import require_root, skip_or_fail
from tests.support.du import ROOT_SQUASHED, du_usage
from tests.support.node import FS_ID

pytestmark = pytest.mark.slow  # du, and subprocesses
OTHER_UID = 4242  # nobody on this machine: what the squashed root is not
PATH_MAX = 4096
DEPTH = 1100
LEVEL = "level-" + "d" * 10  # 17 bytes a level: 1,100 levels make an 19,800-byte path


def squashed_walk(root: Path, concurrency: int) -> Usage:
    """``measure_usage`` in a process of its own run as ``ROOT_SQUASHED``: the node's root as an
    EFS server with root squashing sees it."""
    script = ("import json, sys; from dataclasses import asdict; from pathlib import Path\n"
              "from efs_csi_node.usage_walk import measure_usage\n"
              "print(json.dumps(asdict(measure_usage(Path(sys.argv[1]), "
              "concurrency=int(sys.argv[2])))))")
    out = subprocess.run([*ROOT_SQUASHED, sys.executable, "-c", script, str(root),
                          str(concurrency)], check=True, capture_output=True, text=True).stdout
    return Usage(**json.loads(out))


def needs_root_and_setpriv() -> None:
    require_root()
    if shutil.which("setpriv") is None:
        skip_or_fail("util-linux's setpriv is needed")


def owned_by_another(path: Path, mode: int) -> None:
    for directory, subdirectories, files in os.walk(path):
        for name in [directory, *(os.path.join(directory, entry)
                                  for entry in subdirectories + files)]:
            os.chown(name, OTHER_UID, OTHER_UID)
    path.chmod(mode)


@pytest.mark.parametrize("concurrency", [1, 16])
def test_an_unreadable_subtree_leaves_the_rest_counted_as_du_does(tmp_path: Path,
                                                                  concurrency: int) -> None:
    needs_root_and_setpriv()
    root = tmp_path / "volume"
    (root / "open" / "deeper").mkdir(parents=True)
    (root / "open" / "a").write_bytes(os.urandom(30_000))
    (root / "open" / "deeper" / "b").write_bytes(os.urandom(70_000))
    secret = root / "tenant-b"  # 700, another uid: not even listed
    (secret / "inner").mkdir(parents=True)
    (secret / "big").write_bytes(os.urandom(500_000))
    (secret / "inner" / "more").write_bytes(os.urandom(200_000))
    owned_by_another(secret, 0o700)
    listed = root / "listed-only"  # readable, not searchable: names, but nothing to stat
    listed.mkdir()
    for index in range(3):
        (listed / f"f{index}").write_bytes(os.urandom(40_000))
    owned_by_another(listed, 0o744)

    squashed = squashed_walk(root, concurrency)
    expected = du_usage(root, squashed=True)
    assert (squashed.used_bytes, squashed.used_inodes) == (expected.used_bytes,
                                                           expected.used_inodes)
    # tenant-b's contents, and listed-only's three entries.
    assert squashed.unreadable == 4
    whole = measure_usage(root, concurrency=concurrency)  # the node's own root reads it all
    assert whole == du_usage(root) and whole.unreadable == 0
    assert whole.used_bytes > squashed.used_bytes + 700_000


def make_chain(top: Path, depth: int) -> None:
    """``top``/LEVEL/LEVEL/... ``depth`` levels, a file at every 100th; made relative to each
    level's descriptor (the path is far longer than PATH_MAX)."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(depth):
            os.mkdir(LEVEL, dir_fd=fd)
            inner = os.open(LEVEL, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
            if level % 100 == 99:
                file = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                os.write(file, b"x" * (level * 10))
                os.close(file)
    finally:
        os.close(fd)


def remove_chain(top: Path) -> None:
    """Remove what ``make_chain`` made, a level at a time: each level's subdirectory is moved
    up before the level goes (``shutil.rmtree`` recurses once per level: too deep here)."""
    parent = os.open(top.parent, os.O_RDONLY | os.O_DIRECTORY)
    name, moved = top.name, 0
    try:
        while True:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=parent)
            try:
                below = None
                for entry in os.listdir(fd):
                    if entry == LEVEL:
                        below = f"{top.name}.below-{moved}"
                        moved += 1
                        os.rename(LEVEL, below, src_dir_fd=fd, dst_dir_fd=parent)
                    else:
                        os.unlink(entry, dir_fd=fd)
            finally:
                os.close(fd)
            os.rmdir(name, dir_fd=parent)
            if below is None:
                return
            name = below
    finally:
        os.close(parent)


@pytest.mark.parametrize("concurrency", [1, 16])
def test_a_tree_deeper_than_path_max_is_measured_like_du(tmp_path: Path,
                                                         concurrency: int) -> None:
    top = tmp_path / "deep"
    make_chain(top, DEPTH)
    try:
        assert len(os.fsencode(top)) + DEPTH * (len(LEVEL) + 1) > 4 * PATH_MAX
        before = len(os.listdir("/proc/self/fd"))
        usage = measure_usage(top, concurrency=concurrency)
        assert len(os.listdir("/proc/self/fd")) == before  # every directory closed
        assert usage == du_usage(top)  # GNU du walks it too (fts, relative to descriptors)
        assert usage.used_inodes == 1 + DEPTH + DEPTH // 100
    finally:
        remove_chain(top)


def test_a_volume_bind_mounted_inside_itself_is_counted_once_as_du_does(tmp_path: Path
                                                                         ) -> None:
    require_root()
    root = tmp_path / "volume"
    (root / "data" / "inner").mkdir(parents=True)
    (root / "data" / "file").write_bytes(os.urandom(120_000))
    (root / "data" / "inner" / "more").write_bytes(os.urandom(60_000))
    whole = root / "mirrors" / "whole"  # the volume again, under itself
    part = root / "data" / "inner" / "again"  # data/ again, under itself
    whole.mkdir(parents=True)
    part.mkdir()
    before = measure_usage(root)
    subprocess.run(["mount", "--bind", str(root), str(whole)], check=True)
    try:
        subprocess.run(["mount", "--bind", str(root / "data"), str(part)], check=True)
        try:
            assert (whole / "data" / "file").exists() and (part / "file").exists()
            for concurrency in (1, 16):
                walked = measure_usage(root, concurrency=concurrency)
                assert walked == du_usage(root)
                # Each bind-mount point is skipped, as du skips a cycle: the directory it
                # hides is not seen, the tree shown there is the one already counted.
                assert walked.used_inodes == before.used_inodes - 2
                assert walked.used_bytes <= before.used_bytes
        finally:
            subprocess.run(["umount", str(part)], check=True)
    finally:
        subprocess.run(["umount", str(whole)], check=True)
    assert asdict(measure_usage(root)) == asdict(before)


@pytest.mark.asyncio
async def test_the_node_binary_reports_what_it_may_read_and_says_what_it_could_not(
        mounts_cleaned: Path) -> None:
    """The real node binary, run as EFS's root squashing leaves it (no permission override),
    through NodeStageVolume and NodeGetVolumeStats: the readable part's usage, as du counts it,
    and a normal volume condition whose message says how much was left out."""
    needs_root_and_setpriv()
    tmp_path = mounts_cleaned
    volume = tmp_path / "efs" / FS_ID / "shared"
    (volume / "mine").mkdir(parents=True)
    (volume / "mine" / "data").write_bytes(os.urandom(64_000))
    (volume / "theirs").mkdir()
    (volume / "theirs" / "data").write_bytes(os.urandom(256_000))
    owned_by_another(volume / "theirs", 0o700)
    work = tmp_path / "node"
    work.mkdir()
    node = await start_binary(
        "node", work, ["--mount-backend", "local", "--local-root", str(tmp_path / "efs"),
                       "--availability-zone", "zone-a", "--vol-metrics-opt-in"],
        wrap=lambda argv: [*ROOT_SQUASHED, *argv])
    staging = tmp_path / "kubelet" / "staging"
    channel = node.channel()
    try:
        stub = csi.NodeStub(channel)
        await stub.node_stage_volume(stage_request(f"{FS_ID}:/shared", staging), timeout=30)
        reply = await stub.node_get_volume_stats(csi.NodeGetVolumeStatsRequest(
            volume_id=f"{FS_ID}:/shared", volume_path=str(staging)), timeout=30)
        await stub.node_unstage_volume(csi.NodeUnstageVolumeRequest(
            volume_id=f"{FS_ID}:/shared", staging_target_path=str(staging)), timeout=30)
    finally:
        channel.close()
        await node.stop()
    expected = du_usage(volume, squashed=True)
    used = {entry.unit: entry.used for entry in reply.usage}
    assert used == {csi.VolumeUsageUnit.BYTES: expected.used_bytes,
                    csi.VolumeUsageUnit.INODES: expected.used_inodes}
    assert reply.volume_condition is not None and not reply.volume_condition.abnormal
    assert "1 entry could not be read" in reply.volume_condition.message
