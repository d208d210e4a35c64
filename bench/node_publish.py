"""NodePublishVolume under load: 1 NodeStageVolume, then N concurrent NodePublishVolume calls
for the same volume on one node, then N concurrent NodeUnpublishVolume, against the real node
binary with the local backend (real bind mounts; needs root).

    sudo python bench/node_publish.py [--publishes 100] [--quick]

Prints mounts performed (target: 1 staging mount + N binds; the reference driver performs N
NFS mounts, one per pod), p50/p99 latency of each phase, and the node's peak RSS (VmHWM), and
writes ``bench/results/node_publish.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from efs_csi import csi  # noqa: E402
from efs_csi.mounting.mountinfo import read_mount_table  # noqa: E402
from testbed.csi_builders import mount_capability, percentile  # noqa: E402
from testbed.mounts import unmount_everything_under  # noqa: E402
from testbed.processes import start_binary  # noqa: E402

FS_ID = "fs-0123456789abcdef0"
Mode = csi.VolumeCapabilityAccessModeMode




def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def timed(call: object) -> float:
    started = time.perf_counter()
    await call  # type: ignore[misc]
    return time.perf_counter() - started


async def run(publishes: int, work: Path) -> dict[str, object]:
    root, kubelet = work / "efs", work / "kubelet"
    (root / FS_ID).mkdir(parents=True)
    node = await start_binary("node", work, ["--mount-backend", "local", "--local-root",
                                             str(root), "--availability-zone", "bench-a",
                                             "--log-level", "warning"])
    channel = node.channel()
    try:
        stub = csi.NodeStub(channel)
        staging = kubelet / "staging"
        targets = [kubelet / "pods" / str(i) / "vol" for i in range(publishes)]
        before = len(read_mount_table().under(kubelet))
        stage_s = await timed(stub.node_stage_volume(csi.NodeStageVolumeRequest(
            volume_id=FS_ID, staging_target_path=str(staging),
            volume_capability=mount_capability())))
        started = time.perf_counter()
        publish_s = await asyncio.gather(*(timed(stub.node_publish_volume(
            csi.NodePublishVolumeRequest(volume_id=FS_ID, staging_target_path=str(staging),
                                         target_path=str(t), volume_capability=mount_capability())))
            for t in targets))
        publish_wall = time.perf_counter() - started
        table = read_mount_table()
        mounts = len(table.under(kubelet)) - before
        staging_mounts = table.count_at(staging)
        started = time.perf_counter()
        unpublish_s = await asyncio.gather(*(timed(stub.node_unpublish_volume(
            csi.NodeUnpublishVolumeRequest(volume_id=FS_ID, target_path=str(t))))
            for t in targets))
        unpublish_wall = time.perf_counter() - started
        await stub.node_unstage_volume(csi.NodeUnstageVolumeRequest(
            volume_id=FS_ID, staging_target_path=str(staging)))
        left = len(read_mount_table().under(kubelet))
        rss = peak_rss_kib(node.process.pid)
    finally:
        channel.close()
        await node.stop()
        unmount_everything_under(work)
    return {
        "publishes": publishes,
        "mounts_performed": mounts,
        "staging_mounts": staging_mounts,
        "bind_mounts": mounts - staging_mounts,
        "reference_nfs_mounts": publishes,
        "stage_ms": round(stage_s * 1000, 1),
        "publish_p50_ms": round(statistics.median(publish_s) * 1000, 1),
        "publish_p99_ms": round(percentile(publish_s, 0.99) * 1000, 1),
        "publish_wall_s": round(publish_wall, 2),
        "unpublish_p50_ms": round(statistics.median(unpublish_s) * 1000, 1),
        "unpublish_p99_ms": round(percentile(unpublish_s, 0.99) * 1000, 1),
        "unpublish_wall_s": round(unpublish_wall, 2),
        "mounts_left_after_unstage": left,
        "node_peak_rss_mib": round(rss / 1024, 1),
    }


def targets(row: dict[str, object]) -> list[dict[str, object]]:
    """The lead the performance issue asks us to keep: one NFS mount per volume per node."""
    return [
        {"target": "one staging (NFS) mount per volume per node, a bind per pod",
         "figure": f"{row['staging_mounts']} staging + {row['bind_mounts']} binds "
                   f"for {row['publishes']} publishes",
         "met": row["staging_mounts"] == 1 and row["bind_mounts"] == row["publishes"]},
        {"target": "nothing left mounted after unpublish and unstage",
         "figure": row["mounts_left_after_unstage"],
         "met": row["mounts_left_after_unstage"] == 0},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishes", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="20 publishes")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("node_publish needs root (real bind mounts)")
    publishes = 20 if args.quick else args.publishes
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="bench-node-publish-") as directory:
        row = asyncio.run(run(publishes, Path(directory)))
    width = max(len(key) for key in row)
    print(f"{'metric'.ljust(width)}  value")
    for key, value in row.items():
        print(f"{key.ljust(width)}  {value}")
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "node_publish", "python": sys.version.split()[0],
              "cpus": os.cpu_count(), "rows": [row], "targets": targets(row),
              "load_average_at_start": load_at_start,
              "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    (results / "node_publish.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
