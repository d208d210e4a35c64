"""The node's process-tree memory with 1, 10 and 50 staged volumes on the production data path.

    python bench/node_datapath_memory.py [--counts 1,10,50]

The node image runs as the chart runs it, in front of the real efs-utils v3.2.0 with TLS to a
local mount target (testbed/datapath: the same harness as tests/datapath; only the kernel's
NFS mount is stood in for). Volumes are staged one after another (the same file system, each
its own staging path, so each its own efs-proxy); at each count every process of the node
container is measured from /proc: RSS and PSS (shared pages split between the processes that
map them), grouped as the node (efs-csi-node and its start-up helper, tini), the watchdog and
the efs-proxies. The stand-in mounts' FUSE servers run outside the container (they stand in
for the kernel) and are not counted.

The watchdog cannot see the stand-in mounts' ``port=`` (FUSE does not show it) and takes them
for unmounted 30 s after each mount; the benchmark's node therefore runs with a long unmount
grace period, so no efs-proxy is stopped while it measures, and the container is removed at
the end (every efs-proxy with it).

Needs root, Debian's packages (installed when missing), helm (``make tools``), the images
(built here with scripts/images/build.sh, warm in seconds). Prints a table and saves
``bench/results/node_datapath_memory.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.datapath import packages  # noqa: E402
from testbed.datapath.client import NodeClient, Volume  # noqa: E402
from testbed.datapath.harness import FILE_SYSTEM, DataPath, node_values, render_node  # noqa: E402
from testbed.datapath.pod import Process  # noqa: E402
from testbed.images import TARGETS, engine_from_paths  # noqa: E402

RESULTS = REPO / "bench" / "results" / "node_datapath_memory.json"


def group(process: Process) -> str:
    command = " ".join(process.command[:3])
    if "efs-proxy" in process.command[0]:
        return "efs-proxy"
    if "amazon-efs-mount-watchdog" in command:
        return "watchdog"
    return "node"  # efs-csi-node, its start-up helper, tini


def measure(path: DataPath, staged: int) -> dict[str, Any]:
    assert path.node is not None
    row: dict[str, Any] = {"staged_volumes": staged}
    processes = path.node.processes()
    for name in ("node", "watchdog", "efs-proxy"):
        members = [p for p in processes if group(p) == name]
        row[f"{name}_processes"] = len(members)
        row[f"{name}_rss_mib"] = round(sum(p.rss_kib for p in members) / 1024, 1)
        row[f"{name}_pss_mib"] = round(sum(p.pss_kib for p in members) / 1024, 1)
    row["total_rss_mib"] = round(sum(p.rss_kib for p in processes) / 1024, 1)
    row["total_pss_mib"] = round(sum(p.pss_kib for p in processes) / 1024, 1)
    proxies = row["efs-proxy_processes"]
    row["pss_per_efs_proxy_mib"] = round(row["efs-proxy_pss_mib"] / proxies, 2) if proxies else 0
    return row


async def stage_up_to(client: NodeClient, kubelet: Path, staged: list[Volume],
                      count: int) -> float:
    begin = time.monotonic()
    while len(staged) < count:
        volume = Volume(f"bench-{len(staged)}", FILE_SYSTEM, kubelet)
        await client.stage(volume)
        staged.append(volume)
    return time.monotonic() - begin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="1,10,50")
    args = parser.parse_args()
    counts = sorted(int(item) for item in args.counts.split(","))
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    absent = packages.ensure()
    if absent:
        print(f"missing Debian packages: {absent}", file=sys.stderr)
        return 2
    helm = REPO / ".tools" / "bin" / "helm"
    build = subprocess.run([str(REPO / "scripts/images/build.sh"), "--keep-daemon", *TARGETS],
                           check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
    if build.returncode != 0:
        print(build.stderr[-3000:], file=sys.stderr)
        return 1
    engine = engine_from_paths()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dp-bench-") as directory:
        work = Path(directory)
        kubelet = work / "kubelet"
        # A long grace period: no efs-proxy is stopped while the figures are taken (above).
        manifests = render_node(str(helm), node_values(kubelet, grace_s=3600),
                                work / "values.yaml")
        path = DataPath(engine, work, manifests, kubelet)
        path.start()
        try:
            time.sleep(3)  # the start-up helper has finished
            rows.append({**measure(path, 0), "stage_s": 0.0})
            client = NodeClient(path.socket)
            staged: list[Volume] = []
            for count in counts:
                seconds = asyncio.run(stage_up_to(client, kubelet, staged, count))
                time.sleep(2)
                rows.append({**measure(path, count), "stage_s": round(seconds, 1)})
        finally:
            path.stop()
    print(f"\n{'staged':>7} {'node PSS':>9} {'watchdog':>9} {'proxies':>8} {'proxy PSS':>10} "
          f"{'per proxy':>10} {'total PSS':>10} {'total RSS':>10}   (MiB)")
    for row in rows:
        print(f"{row['staged_volumes']:>7} {row['node_pss_mib']:>9} {row['watchdog_pss_mib']:>9} "
              f"{row['efs-proxy_processes']:>8} {row['efs-proxy_pss_mib']:>10} "
              f"{row['pss_per_efs_proxy_mib']:>10} {row['total_pss_mib']:>10} "
              f"{row['total_rss_mib']:>10}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows, "load_average_at_start": os.getloadavg()[0],
                                   "timings": path.timings}, indent=2) + "\n")
    print(f"saved {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
