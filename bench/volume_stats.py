"""Benchmark: the volume-usage walk against ``du``, on local trees and on a slow file system.

Local rows (10k, 100k, 1M files; 1000 entries per directory, one file in ten holding 5000
bytes, one in a hundred hard-linked from a second directory): after one ``du`` to warm the page
cache, ``du -s --inodes``, ``du -s -B1`` and ``efs_csi_node.usage_walk.measure_usage`` at the node's
default concurrency, each once. The walk runs in a fresh child process so its peak-RSS growth
(worker threads included) is its own.

Slow rows (issue 14): the same kind of tree served through ``slowfs`` (a FUSE pass-through,
``--delay-ms`` per operation, standing in for EFS's round trips). Each run mounts afresh (cold
kernel caches) for ``du -s -B1`` and again for the walk, alternating, so both see the same
machine load; the table gives medians of ``--runs`` runs. ``du``'s inode count is taken on the
backing directory (the pass-through hides nothing: bytes are compared on the mount). It also
records the walk's CPU per wall second (near 1.0 would mean GIL-bound) and the server's CPU per
operation, and measures cancellation: a collector walking the slow mount is closed mid-walk,
timed from ``aclose()`` to every walk thread having ended.

    .venv/bin/python bench/volume_stats.py [--quick] [--sizes 10000,100000,1000000]
        [--slow-files 100000] [--delay-ms 1] [--runs 5] [--concurrency 16] [--dir /tmp]

Prints a table and writes ``bench/results/volume_stats.json`` (rows and targets).
Targets (issue 14): at 1 ms per operation on 100k files at least 8x du's rate with identical
figures; RSS growth under 50 MiB at 1M files; cancellation prompt. (Issue 5, local: at least
half of du's speed.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from efs_csi_node.stats import StatsRequest  # noqa: E402
from efs_csi_node.usage_walk import DEFAULT_WALK_CONCURRENCY, measure_usage  # noqa: E402
from efs_csi_node.volume_stats import CollectorSettings, VolumeStatsCollector  # noqa: E402
from testbed.slowfs import ensure_libfuse, slow_mount  # noqa: E402

PER_DIRECTORY = 1000
PAYLOAD = b"x" * 5000


def build_tree(root: Path, files: int) -> None:
    """Create ``files`` files quickly: raw os calls, no pathlib in the loop."""
    links_dir = os.path.join(root, "links")
    os.mkdir(links_dir)
    flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL
    for start in range(0, files, PER_DIRECTORY):
        directory = os.path.join(root, f"d{start // PER_DIRECTORY:05d}")
        os.mkdir(directory)
        for index in range(start, min(start + PER_DIRECTORY, files)):
            path = f"{directory}/f{index}"
            fd = os.open(path, flags, 0o644)
            if index % 10 == 0:
                os.write(fd, PAYLOAD)
            os.close(fd)
            if index % 100 == 1:
                os.link(path, f"{links_dir}/l{index}")


def load() -> float:
    return round(os.getloadavg()[0], 2)


def timed_du(root: Path, flag: str) -> tuple[int, float]:
    started = time.perf_counter()
    out = subprocess.run(["du", "-s", flag, str(root)], check=True, capture_output=True,
                         text=True).stdout
    return int(out.split()[0]), time.perf_counter() - started


def child_walk(root: str, concurrency: int) -> None:
    """In a fresh process: walk once, print figures, seconds, CPU and peak-RSS growth (KiB)."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    usage = measure_usage(Path(root), concurrency=concurrency)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({"bytes": usage.used_bytes, "inodes": usage.used_inodes,
                      "approximate": usage.approximate, "seconds": seconds, "cpu_s": cpu,
                      "rss_growth_kib": after.ru_maxrss - before.ru_maxrss}))


def walk_in_child(root: Path, concurrency: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", str(root),
                          "--concurrency", str(concurrency)],
                         check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def local_row(root: Path, files: int, concurrency: int) -> dict[str, Any]:
    timed_du(root, "--inodes")  # warm the cache so every contender reads the same way
    du_inodes, du_inodes_s = timed_du(root, "--inodes")
    du_bytes, du_bytes_s = timed_du(root, "-B1")
    walk = walk_in_child(root, concurrency)
    return {
        "case": "local", "files": files, "delay_ms": 0, "concurrency": concurrency, "runs": 1,
        "walk_files_per_s": round(walk["inodes"] / walk["seconds"]),
        "du_files_per_s": round(walk["inodes"] / du_bytes_s),
        "speed_vs_du": round(du_bytes_s / walk["seconds"], 2),
        "speed_vs_du_inodes": round(du_inodes_s / walk["seconds"], 2),
        "bytes_equal_du": walk["bytes"] == du_bytes,
        "inodes_equal_du": walk["inodes"] == du_inodes,
        "rss_growth_mib": round(walk["rss_growth_kib"] / 1024, 2),
        "walk_cpu_per_wall": round(walk["cpu_s"] / walk["seconds"], 2),
        "load_1m": load(),
    }


async def cancel_to_idle(volume: Path, concurrency: int, walk_for_s: float) -> dict[str, float]:
    """Start a collector walk on ``volume``, close the collector after ``walk_for_s``, and time
    ``aclose()`` until it returns and until no walk thread is left."""
    collector = VolumeStatsCollector(CollectorSettings(first_answer_wait_s=0,
                                                       walk_concurrency=concurrency))
    await collector.figures(StatsRequest("fs-bench", "fs-bench", volume), os.statvfs(volume))
    await asyncio.sleep(walk_for_s)
    threads = [t for t in threading.enumerate() if t.name.startswith("walk:")]
    started = time.perf_counter()
    await collector.aclose()
    closed = time.perf_counter() - started
    for thread in threads:
        thread.join()
    idle = time.perf_counter() - started
    return {"threads_at_cancel": len(threads), "aclose_ms": closed * 1000,
            "cancel_to_idle_ms": idle * 1000,
            "left_running": sum(1 for t in threads if t.is_alive())}


def slow_rows(backing: Path, mountpoint: Path, files: int, delay_s: float, runs: int,
              concurrency: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    du_inodes = int(subprocess.run(["du", "-s", "--inodes", str(backing)], check=True,
                                   capture_output=True, text=True).stdout.split()[0])
    du_runs: list[dict[str, Any]] = []
    walk_runs: list[dict[str, Any]] = []
    for run in range(runs):
        with slow_mount(backing, mountpoint, delay_s=delay_s) as mounted:
            load_before = load()
            du_bytes, du_s = timed_du(mountpoint, "-B1")
        du_runs.append({"bytes": du_bytes, "seconds": du_s, "load_1m": load_before,
                        **mounted.stats})
        with slow_mount(backing, mountpoint, delay_s=delay_s) as mounted:
            load_before = load()
            walk = walk_in_child(mountpoint, concurrency)
        walk_runs.append({**walk, "load_1m": load_before, **mounted.stats})
        print(f"  slow run {run + 1}/{runs}: du {du_s:.1f}s, walk {walk['seconds']:.2f}s "
              f"({du_s / walk['seconds']:.1f}x), load {load_before}", flush=True)
        for name, result in (("du", du_runs[-1]), ("walk", walk_runs[-1])):
            if "error" in result:
                print(f"  ({name} mount: {result['error'][:500]})", flush=True)
    cancels = []
    for _ in range(runs):
        with slow_mount(backing, mountpoint, delay_s=delay_s):
            cancels.append(asyncio.run(cancel_to_idle(mountpoint, concurrency, 1.0)))
    served = [w for w in walk_runs if "operations" in w]  # server figures, when it wrote them
    du_served = [d for d in du_runs if "operations" in d]
    du_s = statistics.median(r["seconds"] for r in du_runs)
    walk_s = statistics.median(r["seconds"] for r in walk_runs)
    inodes = walk_runs[0]["inodes"]
    row = {
        "case": f"slowfs {delay_s * 1000:g} ms/op", "files": files,
        "delay_ms": delay_s * 1000, "concurrency": concurrency, "runs": runs,
        "walk_files_per_s": round(inodes / walk_s),
        "du_files_per_s": round(inodes / du_s),
        "speed_vs_du": round(du_s / walk_s, 2),
        "speed_vs_du_min": round(min(d["seconds"] / w["seconds"]
                                     for d, w in zip(du_runs, walk_runs, strict=True)), 2),
        "bytes_equal_du": all(w["bytes"] == d["bytes"]
                              for d, w in zip(du_runs, walk_runs, strict=True)),
        "inodes_equal_du": all(w["inodes"] == du_inodes for w in walk_runs),
        "rss_growth_mib": round(max(w["rss_growth_kib"] for w in walk_runs) / 1024, 2),
        "walk_cpu_per_wall": round(statistics.median(w["cpu_s"] / w["seconds"]
                                                     for w in walk_runs), 2),
        "server_cpu_per_op_us": round(statistics.median(
            w["server_cpu_s"] / w["operations"] for w in served) * 1e6) if served else None,
        "du_ops_per_file": round(statistics.median(d["operations"] for d in du_served)
                                 / inodes, 2) if du_served else None,
        "walk_ops_per_file": round(statistics.median(w["operations"] for w in served)
                                   / inodes, 2) if served else None,
        "peak_in_flight": max((w["peak_in_flight"] for w in served), default=None),
        "cancel_to_idle_ms": round(statistics.median(c["cancel_to_idle_ms"] for c in cancels),
                                   1),
        "cancel_to_idle_max_ms": round(max(c["cancel_to_idle_ms"] for c in cancels), 1),
        "threads_left_after_cancel": sum(c["left_running"] for c in cancels),
        "load_1m": round(statistics.median(r["load_1m"] for r in du_runs + walk_runs), 2),
    }
    detail = {"du_runs": du_runs, "walk_runs": walk_runs, "cancels": cancels}
    return [row], detail


COLUMNS = ("case", "files", "concurrency", "walk_files_per_s", "du_files_per_s", "speed_vs_du",
           "bytes_equal_du", "inodes_equal_du", "rss_growth_mib", "walk_cpu_per_wall",
           "cancel_to_idle_ms", "load_1m")


def print_table(rows: list[dict[str, Any]]) -> None:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in COLUMNS]
    print("  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row.get(c, "")).rjust(w)
                        for c, w in zip(COLUMNS, widths, strict=True)))


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for row in rows:
        if row["case"] != "local" and row["files"] >= 100_000 and row["delay_ms"] == 1:
            found.append({"target": "1 ms/op, 100k files: >= 8x du's rate",
                          "figure": row["speed_vs_du"], "met": row["speed_vs_du"] >= 8})
            found.append({"target": "identical bytes and inodes to du",
                          "figure": f"{row['bytes_equal_du']}/{row['inodes_equal_du']}",
                          "met": row["bytes_equal_du"] and row["inodes_equal_du"]})
            found.append({"target": "cancellation prompt (aclose to walk threads ended)",
                          "figure": f"{row['cancel_to_idle_ms']} ms median, "
                                    f"{row['cancel_to_idle_max_ms']} ms max",
                          "met": row["threads_left_after_cancel"] == 0
                          and row["cancel_to_idle_max_ms"] < 1000})
        if row["case"] == "local" and row["files"] >= 1_000_000:
            found.append({"target": "RSS growth < 50 MiB at 1M files",
                          "figure": row["rss_growth_mib"], "met": row["rss_growth_mib"] < 50})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--quick", action="store_true",
                        help="local 10k and 100k, slow 10k files, 3 runs")
    parser.add_argument("--slow-files", type=int, default=100_000)
    parser.add_argument("--delay-ms", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_WALK_CONCURRENCY)
    parser.add_argument("--only", choices=("local", "slow"), default=None)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_walk(args.child, args.concurrency)
        return
    sizes = "10000,100000" if args.quick else args.sizes
    slow_files, runs = (10_000, 3) if args.quick else (args.slow_files, args.runs)
    rows: list[dict[str, Any]] = []
    detail: dict[str, Any] = {}
    load_at_start = os.getloadavg()
    if args.only in (None, "local"):
        for files in (int(size) for size in sizes.split(",")):
            with tree(args.dir, files) as root:
                rows.append(local_row(root, files, args.concurrency))
    if args.only in (None, "slow"):
        ensure_libfuse()
        with tree(args.dir, slow_files) as backing:
            mountpoint = Path(tempfile.mkdtemp(prefix="volstats-mnt-", dir=args.dir))
            try:
                slow, detail = slow_rows(backing, mountpoint, slow_files, args.delay_ms / 1000,
                                         runs, args.concurrency)
                rows += slow
            finally:
                mountpoint.rmdir()
    print_table(rows)
    met = targets(rows)
    for target in met:
        print(f"target: {target['target']}: {target['figure']} "
              f"({'met' if target['met'] else 'NOT met'})")
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "volume_stats", "python": platform.python_version(),
              "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "load_average_at_start": [round(x, 2) for x in load_at_start],
              "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
              "rows": rows, "targets": met, "slow_runs": detail}
    (results / "volume_stats.json").write_text(json.dumps(report, indent=2) + "\n")


@contextlib.contextmanager
def tree(parent: str, files: int) -> Iterator[Path]:
    """A freshly built benchmark tree of ``files`` files, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=f"volstats-{files}-", dir=parent))
    try:
        started = time.perf_counter()
        build_tree(root, files)
        print(f"built {files} files in {time.perf_counter() - started:.1f}s", flush=True)
        yield root
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
