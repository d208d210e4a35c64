"""The kind flow's pure parts, by tables: what a node's mount table says about our volumes, what
the apps' I/O logs say about a disruption, and what a plugin's log says it did."""

from __future__ import annotations

import hashlib

import pytest

from efs_csi.mounting.mountinfo import MountTable
from testbed.kind import apps, manifests
from testbed.kind.cluster import RpcCall, rpc_calls
from testbed.kind.mounts import (
    Expected,
    Volume,
    app_view_problems,
    differences,
    ours,
    parse_table,
    peer_groups,
    propagation_problems,
    publish_path,
    staged_root,
    staging_path,
)

HANDLE = "fs-1234abcd::fsap-0123456789abcdef"
VOLUME = Volume("pvc-1", HANDLE)
OTHER = Volume("pvc-2", "fs-1234abcd::fsap-fedcba9876543210")


def line(mount_id: int, mount_point: str, root: str = "/data/fs-1234abcd/ap") -> str:
    return (f"{mount_id} 1 254:0 {root} {mount_point} rw,relatime shared:1 - ext4 /dev/vda rw")


def table(*mount_points: str) -> MountTable:
    return parse_table("\n".join(line(i + 100, path) for i, path in enumerate(mount_points)))


def test_staging_path_is_kubelets() -> None:
    digest = hashlib.sha256(HANDLE.encode()).hexdigest()
    assert staging_path(HANDLE) == (
        f"/var/lib/kubelet/plugins/kubernetes.io/csi/efs.csi.aws.com/{digest}/globalmount")


@pytest.mark.parametrize(("mounted", "problems"), [
    # one staging, one bind per pod: as expected
    ([staging_path(HANDLE), publish_path("uid-a", "pvc-1")], 0),
    # the staging mount missing
    ([publish_path("uid-a", "pvc-1")], 1),
    # a staging mount stacked on another (a restart that staged again)
    ([staging_path(HANDLE), staging_path(HANDLE), publish_path("uid-a", "pvc-1")], 1),
    # a bind of a pod that should be gone
    ([staging_path(HANDLE), publish_path("uid-a", "pvc-1"), publish_path("uid-b", "pvc-1")], 1),
    # nothing at all
    ([], 2),
])
def test_differences(mounted: list[str], problems: int) -> None:
    expected = Expected(staged=frozenset({HANDLE}), published=frozenset({("uid-a", "pvc-1")}))
    assert len(differences(table(*mounted), [VOLUME], expected)) == problems


def test_other_mounts_are_not_ours() -> None:
    mounted = table("/", "/var/lib/kubelet/pods/uid-a/volumes/kubernetes.io~empty-dir/x",
                    staging_path(OTHER.handle), publish_path("uid-a", "pvc-1"))
    assert [entry.mount_point for entry in ours(mounted, [VOLUME])] == [
        publish_path("uid-a", "pvc-1")]
    expected = Expected(frozenset(), frozenset({("uid-a", "pvc-1")}))
    assert differences(mounted, [VOLUME], expected) == []


def test_staged_root_is_the_directory_shown() -> None:
    mounted = parse_table(line(7, staging_path(HANDLE), root="/srv/kind/fs-1234abcd/dyn/pvc-1"))
    assert staged_root(mounted, HANDLE) == "/srv/kind/fs-1234abcd/dyn/pvc-1"
    assert staged_root(mounted, OTHER.handle) is None


def info(*mounts: tuple[str, str, str]) -> str:
    """mountinfo lines for (mount point, root, optional fields)."""
    return "\n".join(f"{100 + i} 1 254:0 {root} {point} rw,relatime {optional} - ext4 /dev/vda rw"
                     for i, (point, root, optional) in enumerate(mounts))


AP_ROOT = "/data/fs-1234abcd/ap"


def test_peer_groups_read_from_the_optional_fields() -> None:
    text = info(("/a", "/", "shared:3 master:1"), ("/b", "/", "master:2"), ("/c", "/", ""))
    assert peer_groups(text) == {"/a": frozenset({3}), "/b": frozenset(), "/c": frozenset()}


@pytest.mark.parametrize(("plugin", "node", "problem"), [
    # Bidirectional: one mount, peers
    ((AP_ROOT, "shared:7"), (AP_ROOT, "shared:7"), None),
    # made in the plugin container but never reached the node (HostToContainer or None)
    ((AP_ROOT, "shared:7"), None, "not mounted in the node"),
    # the node has it, a new plugin container does not see it (it could not unmount it)
    (None, (AP_ROOT, "shared:7"), "not mounted in the plugin container"),
    # both hold a mount there, but each its own: no propagation between them
    ((AP_ROOT, "shared:7"), (AP_ROOT, "shared:9"), "not peers"),
    ((AP_ROOT, ""), (AP_ROOT, "master:7"), "not peers"),
    # different directories
    ((AP_ROOT, "shared:7"), ("/data/fs-1234abcd/other", "shared:7"), "the plugin container shows"),
])
def test_propagation_problems(plugin: tuple[str, str] | None, node: tuple[str, str] | None,
                              problem: str | None) -> None:
    def side(mount: tuple[str, str] | None) -> str:
        return info(("/", "/", "shared:1"), *([(staging_path(HANDLE), *mount)] if mount else []))

    problems = propagation_problems(side(plugin), side(node), HANDLE)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems


def test_app_view_problems() -> None:
    staged = parse_table(line(7, staging_path(HANDLE), root=AP_ROOT)).entries[0]
    assert app_view_problems(info(("/data", AP_ROOT, "")), "/data", staged) == []
    assert "nothing mounted" in app_view_problems(info(("/", "/", "")), "/data", staged)[0]
    assert "shows" in app_view_problems(info(("/data", "/elsewhere", "")), "/data", staged)[0]


WRITES = "\n".join(f"{100 + i * 0.2:.3f} {i + 1}" for i in range(100))  # t=100..119.8


@pytest.mark.parametrize(("start", "end", "went_on"), [
    (105.0, 110.0, True),
    (119.7, 120.5, False),  # nothing after the window: the writer stopped
    (95.0, 99.0, False),  # nothing inside the window
])
def test_continuity_of_writes(start: float, end: float, went_on: bool) -> None:
    assert apps.continuity(apps.writer_samples(WRITES), start, end).went_on is went_on


def test_a_stall_is_measured_and_a_frozen_sequence_is_not_progress() -> None:
    samples = [apps.Sample(100, 1), apps.Sample(101, 2), apps.Sample(109, 3), apps.Sample(110, 4)]
    assert apps.continuity(samples, 102, 108).longest_pause_s == 8
    reads = [apps.Sample(100 + i, 7) for i in range(10)]  # the reader saw nothing new
    assert not apps.continuity(reads, 102, 106).went_on


def test_reader_lines_and_errors() -> None:
    output = "R 100.5 100.2 3\nIOERR read 101\nR 101.5 101.4 8\n"
    assert apps.reader_samples(output) == [apps.Sample(100.5, 3), apps.Sample(101.5, 8)]
    assert apps.errors(output) == ["IOERR read 101"]


def test_rpc_calls_from_console_and_json_logs() -> None:
    log = (
        "2026-12-06T12:32:02Z [info     ] rpc        [efs_csi.rpc] code=OK duration_s=0.01 "
        "method=NodeUnstageVolume staging_target_path='/var/lib/kubelet/a b/globalmount' "
        f"volume_id={HANDLE}\n"
        "2026-12-06T12:32:02Z [info     ] serving    [efs_csi.rpc.server] endpoint=/csi/csi.sock\n"
        '{"method": "NodeUnpublishVolume", "code": "OK", "volume_id": "v", '
        '"target_path": "/t", "event": "rpc"}\n')
    assert rpc_calls(log) == [RpcCall("NodeUnstageVolume", "OK", HANDLE, ""),
                              RpcCall("NodeUnpublishVolume", "OK", "v", "/t")]


def test_app_pods() -> None:
    reader = manifests.reader("r", "claim", "w", node="node-b")
    spec = reader["spec"]
    assert spec["volumes"][0]["persistentVolumeClaim"] == {"claimName": "claim", "readOnly": True}
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": "node-b"}
    assert {"name": "WRITER", "value": "w"} in spec["containers"][0]["env"]
    writer = manifests.writer("w", "claim", node=None)
    assert "nodeSelector" not in writer["spec"]
    assert writer["spec"]["volumes"][0]["persistentVolumeClaim"]["readOnly"] is False
