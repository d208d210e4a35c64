"""Run every benchmark and gather their figures into one JSON summary and one Markdown table.

    python bench/run_all.py [--quick] [--only NAME ...]
    python bench/run_all.py --collect     # only gather the JSON already saved

Each benchmark is a script ``bench/<name>.py`` that prints its own table and saves
``bench/results/<name>.json``. This runner executes them one after another (they measure
throughput, so they must not share the two cores), then writes ``bench/results/summary.json``
and ``bench/results/summary.md``. A benchmark that saves ``"targets"`` (a list of
``{"target", "figure", "met"}``, and for a target not met ``"in_the_way"``: what stands in
the way) gets them listed under its table, with the machine's load
average when it ran, and in the table of every target that opens the summary.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def benchmarks() -> list[str]:
    return sorted(path.stem for path in BENCH.glob("*.py")
                  if path.stem != "run_all" and not path.stem.startswith("_"))


def rows_of(data: Any) -> list[dict[str, Any]]:
    """The table rows a benchmark saved: ``{"rows": [...]}``, a list, or one flat dict."""
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        return [row for row in data["rows"] if isinstance(row, dict)]
    if isinstance(data, list):
        return [row for row in data if isinstance(row, dict)]
    if isinstance(data, dict):
        return [{k: v for k, v in data.items() if not isinstance(v, dict | list)}]
    return []


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def targets_of(data: Any) -> str:
    """The targets a benchmark checked, one line each, and the load it ran under."""
    if not isinstance(data, dict):
        return ""
    lines = [f"- {'met' if item.get('met') else 'NOT met'}: {item.get('target')} "
             f"({cell(item.get('figure'))})"
             for item in data.get("targets", []) if isinstance(item, dict)]
    load = data.get("load_average_at_start")
    if lines and isinstance(load, list):
        lines.append(f"- load average (1, 5, 15 min) at start: {cell(load)}, at end: "
                     f"{cell(data.get('load_average_at_end'))}")
    return "\n".join(lines) + "\n" if lines else ""


def targets_table(summary: dict[str, Any]) -> str:
    """Every benchmark's targets in one table, so the summary opens with met / not met."""
    lines = ["## Targets", "", "| benchmark | target | figure | met |", "|---|---|---|---|"]
    for name, entry in summary.items():
        data = entry.get("results")
        items = data.get("targets", []) if isinstance(data, dict) else []
        lines += [f"| {name} | {item.get('target')} | {cell(item.get('figure'))} | "
                  f"{'met' if item.get('met') else '**NOT met**'}"
                  f"{': ' + item['in_the_way'] if item.get('in_the_way') else ''} |"
                  for item in items if isinstance(item, dict)]
    return "\n".join(lines) + "\n" if len(lines) > 4 else ""


def markdown(name: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"## {name}\n\n(no rows)\n"
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    lines = [f"## {name}", "", "| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(column, "")) for column in columns) + " |"
              for row in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--only", nargs="*", default=None, help="run only these benchmarks")
    parser.add_argument("--collect", action="store_true",
                        help="run nothing; summarise the results already saved")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    summary: dict[str, Any] = {}
    sections: list[str] = ["# efs-csi benchmark summary", ""]
    failures = 0
    for name in benchmarks():
        if args.only is not None and name not in args.only:
            continue
        returncode, seconds = 0, 0.0
        if not args.collect:
            command = [sys.executable, str(BENCH / f"{name}.py"),
                       *(["--quick"] if args.quick else [])]
            print(f"=== {name}: {' '.join(command[1:])}", flush=True)
            started = time.monotonic()
            returncode = subprocess.run(command, check=False, cwd=BENCH.parent).returncode
            seconds = round(time.monotonic() - started, 1)
        saved = RESULTS / f"{name}.json"
        data = json.loads(saved.read_text()) if saved.exists() else None
        summary[name] = {"exit_code": returncode, "seconds": seconds, "results": data}
        failures += returncode != 0
        title = name if args.collect else f"{name} (exit {returncode}, {seconds} s)"
        sections.append(markdown(title, rows_of(data)) + targets_of(data))
    sections.insert(2, targets_table(summary))
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / "summary.md").write_text("\n".join(sections))
    print("\n".join(sections))
    print(f"wrote {RESULTS / 'summary.json'} and {RESULTS / 'summary.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
