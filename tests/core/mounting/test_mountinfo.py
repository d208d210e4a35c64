"""Parsing /proc/self/mountinfo, escapes included, and reading the real one."""

from __future__ import annotations

from efs_csi.mounting.mountinfo import parse_mountinfo, read_mount_table, unescape

SAMPLE = (
    "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p1 rw\n"
    "40 22 0:45 / /var/lib/kubelet/pods/a/volumes/x\\040y rw,relatime shared:9 - "
    "nfs4 127.0.0.1:/ rw,vers=4.1\n"
    "41 22 0:45 /sub/dir /mnt/pub ro,relatime - nfs4 127.0.0.1:/ rw,vers=4.1\n"
    "42 22 0:45 /sub/dir /mnt/pub rw,relatime - nfs4 127.0.0.1:/ rw,vers=4.1\n"
    "43 22 0:50 / /tmp/back\\134slash\\011tab rw - tmpfs tmpfs rw\n"
)


def test_unescape() -> None:
    assert unescape("a\\040b\\011c\\012d\\134e") == "a b\tc\nd\\e"


def test_parse_fields_and_escapes() -> None:
    table = parse_mountinfo(SAMPLE)
    entry = table.at("/var/lib/kubelet/pods/a/volumes/x y")
    assert entry is not None
    assert (entry.device, entry.root, entry.fs_type, entry.source) == (
        "0:45", "/", "nfs4", "127.0.0.1:/")
    assert not entry.read_only
    assert table.at("/tmp/back\\slash\ttab") is not None


def test_last_mount_on_a_path_is_the_visible_one() -> None:
    table = parse_mountinfo(SAMPLE)
    top = table.at("/mnt/pub")
    assert top is not None and top.mount_id == 42 and not top.read_only
    assert table.count_at("/mnt/pub") == 2


def test_same_origin_matches_binds_of_the_same_directory() -> None:
    table = parse_mountinfo(SAMPLE)
    first, second = (e for e in table.entries if e.mount_point == "/mnt/pub")
    staged = table.at("/var/lib/kubelet/pods/a/volumes/x y")
    assert first.same_origin(second)
    assert staged is not None and not staged.same_origin(first)


def test_under() -> None:
    table = parse_mountinfo(SAMPLE)
    assert [e.mount_id for e in table.under("/mnt")] == [41, 42]


def test_reads_the_real_table() -> None:
    assert read_mount_table().at("/") is not None
