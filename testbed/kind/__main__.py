"""``python -m testbed.kind``: the kind e2e flow (what ``make kind-e2e`` runs), on the cluster
``scripts/kind-up.sh`` made. Prints PASS/FAIL per check and the time of each step; exits 1 when
a check failed. ``--results`` saves them as JSON."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from testbed.kind import flow
from testbed.kind.cluster import Cluster
from testbed.kind.commands import Tools
from testbed.kind.context import Context, Settings
from testbed.kind.efs_api import EfsApi, port_forward
from testbed.kind.report import Report

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", default=os.environ.get("KIND_CLUSTER", "efs-csi"))
    parser.add_argument("--api-port", type=int,
                        default=int(os.environ.get("EFS_CSI_KIND_API_PORT", "15000")),
                        help="local port forwarded to the in-cluster EFS API")
    parser.add_argument("--upgrade-tag", default="kind-upgrade",
                        help="the image tag `helm upgrade` moves the release to")
    parser.add_argument("--results", type=Path, help="write the checks and figures here (JSON)")
    args = parser.parse_args(argv)

    tools = Tools(args.cluster)
    report = Report()
    settings = Settings(chart=REPO / "helm", upgrade_tag=args.upgrade_tag)
    try:
        with port_forward(tools, args.api_port) as endpoint:
            flow.run(Context(tools, Cluster(tools), EfsApi(endpoint), report, settings))
    except Exception as exc:  # reported as a failed check like any other
        report.check("the flow reached the in-cluster EFS API", False, str(exc))
    print(report.table(), flush=True)
    if args.results is not None:
        report.write(args.results)
    failed = [check.name for check in report.checks if not check.passed]
    print(f"{len(report.checks) - len(failed)} of {len(report.checks)} checks passed", flush=True)
    return 0 if report.passed and report.checks else 1


if __name__ == "__main__":
    sys.exit(main())
