"""Benchmark: the volume-usage walk against ``du`` on trees of 10k, 100k and 1M files.

For each size it builds a tree (1000 entries per directory, one file in ten holding 5000 bytes,
one in a hundred hard-linked from a second directory), warms the page cache with one ``du``,
then times ``du -s --inodes``, ``du -s -B1`` and ``node.usage_walk.measure_usage`` in the
same run. The walk runs in a fresh child process so its peak-RSS growth is its own. Prints a
table and writes ``bench/results/volume_stats.json``.

    .venv/bin/python bench/volume_stats.py [--sizes 10000,100000,1000000] [--dir /tmp]

Targets (issue 5): at least half of du's speed, RSS growth under 50 MiB at 1M files, figures
equal to du's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from node.usage_walk import measure_usage  # noqa: E402

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


def timed_du(root: Path, flag: str) -> tuple[int, float]:
    started = time.perf_counter()
    out = subprocess.run(["du", "-s", flag, str(root)], check=True, capture_output=True,
                         text=True).stdout
    return int(out.split()[0]), time.perf_counter() - started


def child_walk(root: str) -> None:
    """In a fresh process: walk once, print figures, seconds and peak-RSS growth (KiB)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    usage = measure_usage(Path(root))
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"bytes": usage.used_bytes, "inodes": usage.used_inodes,
                      "approximate": usage.approximate, "seconds": seconds,
                      "rss_growth_kib": after - before}))


def measure(root: Path, files: int) -> dict[str, object]:
    timed_du(root, "--inodes")  # warm the cache so every contender reads the same way
    du_inodes, du_inodes_s = timed_du(root, "--inodes")
    du_bytes, du_bytes_s = timed_du(root, "-B1")
    out = subprocess.run([sys.executable, __file__, "--child", str(root)], check=True,
                         capture_output=True, text=True).stdout
    walk = json.loads(out)
    return {
        "files": files, "inodes": walk["inodes"], "walk_s": round(walk["seconds"], 4),
        "walk_files_per_s": round(walk["inodes"] / walk["seconds"]),
        "du_inodes_s": round(du_inodes_s, 4), "du_bytes_s": round(du_bytes_s, 4),
        "speed_vs_du_inodes": round(du_inodes_s / walk["seconds"], 2),
        "speed_vs_du_bytes": round(du_bytes_s / walk["seconds"], 2),
        "rss_growth_mib": round(walk["rss_growth_kib"] / 1024, 2),
        "bytes_equal_du": walk["bytes"] == du_bytes,
        "inodes_equal_du": walk["inodes"] == du_inodes,
        "approximate": walk["approximate"],
    }


COLUMNS = ("files", "walk_files_per_s", "speed_vs_du_inodes", "speed_vs_du_bytes",
           "rss_growth_mib", "bytes_equal_du", "inodes_equal_du")


def print_table(rows: list[dict[str, object]]) -> None:
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS]
    print("  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[c]).rjust(w) for c, w in zip(COLUMNS, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--quick", action="store_true", help="only the 10k and 100k trees")
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_walk(args.child)
        return
    sizes = "10000,100000" if args.quick else args.sizes
    rows = []
    for files in (int(size) for size in sizes.split(",")):
        root = Path(tempfile.mkdtemp(prefix=f"volstats-{files}-", dir=args.dir))
        try:
            started = time.perf_counter()
            build_tree(root, files)
            print(f"built {files} files in {time.perf_counter() - started:.1f}s", flush=True)
            rows.append(measure(root, files))
        finally:
            subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)
            if root.exists():
                shutil.rmtree(root, ignore_errors=True)
    print_table(rows)
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "volume_stats", "python": platform.python_version(),
              "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "rows": rows}
    (results / "volume_stats.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
