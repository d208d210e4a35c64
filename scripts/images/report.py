"""Print where an image build's time went and how big the images are; save both as JSON.

Usage: report.py TIMES_TSV SIZES_TSV REPORT_JSON EFS_UTILS_SOURCE BASE_IMAGE
(written by scripts/images/build.sh: phase<TAB>seconds, image<TAB>bytes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(path: str) -> list[tuple[str, float]]:
    return [(name, float(value)) for name, value in
            (line.split("\t") for line in Path(path).read_text().splitlines() if line)]


def main(times_tsv: str, sizes_tsv: str, report_json: str, source: str, base: str) -> int:
    phases = rows(times_tsv)
    sizes = rows(sizes_tsv)
    print(f"\nimage build ({'efs-utils ' + source}, base {base})")
    print(f"{'phase':<28}{'seconds':>10}")
    for name, seconds in phases:
        print(f"{name:<28}{seconds:>10.1f}")
    print(f"\n{'image':<40}{'MB':>8}")
    for image, size in sizes:
        print(f"{image:<40}{size / 1e6:>8.1f}")
    Path(report_json).write_text(json.dumps({
        "efs_utils_source": source,
        "base_image": base,
        "phases_s": dict(phases),
        "image_bytes": {image: int(size) for image, size in sizes},
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
