"""Print where an image build's time went, how big the images are and what their SBOMs hold;
save all of it as JSON.

Usage: report.py TIMES_TSV SIZES_TSV REPORT_JSON EFS_UTILS_SOURCE BASE_IMAGE [SBOM_DIR STEPS_TSV]
(written by scripts/images/build.sh: phase<TAB>seconds, image<TAB>bytes, target<TAB>the SBOM
step's seconds or "CACHED"; SBOM_DIR holds <target>.cdx.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def rows(path: str) -> list[tuple[str, float]]:
    return [(name, float(value)) for name, value in
            (line.split("\t") for line in Path(path).read_text().splitlines() if line)]


def _walk(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for component in components:
        found.append(component)
        found += _walk(component.get("components", []))
    return found


def sbom_counts(path: Path) -> dict[str, int]:
    """Components of a CycloneDX document by kind: Debian packages, Python distributions,
    Rust crates (efs-proxy's), applications (efs-utils, efs-proxy), files, and all of them."""
    components = _walk(json.loads(path.read_text()).get("components", []))
    counts = {"deb": 0, "pypi": 0, "cargo": 0, "application": 0, "file": 0}
    for component in components:
        purl = component.get("purl", "")
        for kind in ("deb", "pypi", "cargo"):
            if purl.startswith(f"pkg:{kind}/"):
                counts[kind] += 1
        if component.get("type") in ("application", "file"):
            counts[component["type"]] += 1
    counts["total"] = len(components)
    return counts


def main(*args: str) -> int:
    times_tsv, sizes_tsv, report_json, source, base = args[:5]
    sbom_dir, steps_tsv = (*args[5:7], "", "")[:2]
    phases = rows(times_tsv)
    sizes = rows(sizes_tsv)
    pinned = "@sha256:" in base
    print(f"\nimage build ({'efs-utils ' + source}, base {base}, "
          f"{'pinned by digest' if pinned else 'not pinned by digest'})")
    print(f"{'phase':<28}{'seconds':>10}")
    for name, seconds in phases:
        print(f"{name:<28}{seconds:>10.1f}")
    print(f"\n{'image':<40}{'MB':>8}")
    for image, size in sizes:
        print(f"{image:<40}{size / 1e6:>8.1f}")
    sboms: dict[str, dict[str, Any]] = {}
    if sbom_dir:
        steps = dict(line.split("\t") for line in Path(steps_tsv).read_text().splitlines()
                     if line) if steps_tsv and Path(steps_tsv).exists() else {}
        for target, step in steps.items():  # the images this run built, in build order
            path = Path(sbom_dir) / f"{target}.cdx.json"
            if path.exists():
                sboms[target] = {**sbom_counts(path), "step": step}
        print(f"\n{'SBOM':<16}{'deb':>6}{'pypi':>6}{'cargo':>7}{'apps':>6}{'files':>7}"
              f"{'total':>7}{'step (s)':>10}")
        for target, counts in sboms.items():
            print(f"{target:<16}{counts['deb']:>6}{counts['pypi']:>6}{counts['cargo']:>7}"
                  f"{counts['application']:>6}{counts['file']:>7}{counts['total']:>7}"
                  f"{counts['step']:>10}")
    Path(report_json).write_text(json.dumps({
        "efs_utils_source": source,
        "base_image": base,
        "base_pinned_by_digest": pinned,
        "phases_s": dict(phases),
        "image_bytes": {image: int(size) for image, size in sizes},
        "sbom": sboms,
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
