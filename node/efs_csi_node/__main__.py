"""Command line of efs-csi-node."""

from __future__ import annotations

import argparse
import os
import sys

from efs_csi.cli import (
    add_bool_flag,
    base_parser,
    non_negative_int,
    parse_args,
    positive_float,
    positive_int,
    run,
)
from efs_csi_node.efs_utils.config import ConfigError, render
from efs_csi_node.efs_utils.startup import overrides_arg, settings_from_args
from efs_csi_node.usage_walk import DEFAULT_WALK_CONCURRENCY

# Each operation in flight is a thread of the walk: a sane ceiling, far above what helps.
MAX_WALK_CONCURRENCY = 256


def walk_concurrency(text: str) -> int:
    value = positive_int(text)
    if value > MAX_WALK_CONCURRENCY:
        raise argparse.ArgumentTypeError(
            f"expected an integer from 1 to {MAX_WALK_CONCURRENCY}, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser("efs-csi-node", "CSI node plugin for Amazon EFS")
    parser.add_argument("--node-id", default=os.environ.get("CSI_NODE_NAME"),
                        help="this node's name (default: CSI_NODE_NAME)")
    parser.add_argument("--availability-zone", default=None,
                        help="this node's zone (default: instance metadata, then Node label)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION"))
    parser.add_argument("--mount-backend", choices=("efs", "local"), default="efs")
    parser.add_argument("--local-root", default=None,
                        help="directory holding one subdirectory per file system (local backend)")
    add_bool_flag(parser, "--vol-metrics-opt-in", default=False,
                  help_text="report volume usage (NodeGetVolumeStats)")
    parser.add_argument("--vol-metrics-refresh-period", type=positive_float, default=240.0,
                        metavar="MINUTES", help="age after which a usage figure is refreshed")
    parser.add_argument("--vol-metrics-fs-rate-limit", type=positive_int, default=5,
                        help="usage walks running at once per file system")
    parser.add_argument("--vol-metrics-walk-concurrency", type=walk_concurrency,
                        default=DEFAULT_WALK_CONCURRENCY, metavar="N",
                        help="file system operations in flight per usage walk (1: one at a "
                             "time, like du)")
    parser.add_argument("--max-inflight-mount-calls", type=non_negative_int, default=0,
                        help="mount operations running at once (0: unbounded)")
    parser.add_argument("--volume-attach-limit", type=non_negative_int, default=0,
                        help="max_volumes_per_node reported to the scheduler (0: unset)")
    parser.add_argument("--mount-timeout", type=positive_float, default=60.0, metavar="SECONDS")
    parser.add_argument("--unmount-timeout", type=positive_float, default=30.0,
                        metavar="SECONDS")
    add_bool_flag(parser, "--remove-not-ready-taint",
                  default=not os.environ.get("DISABLE_TAINT_WATCHER"),
                  help_text="remove the efs.csi.aws.com/agent-not-ready taint once serving")
    parser.add_argument("--efs-utils-config-dir", default="/var/amazon/efs",
                        help="efs-utils configuration directory (a host directory)")
    parser.add_argument("--efs-utils-legacy-config-dir", default="/etc/amazon/efs-legacy",
                        help="where an older release kept efs-utils state (migrated once)")
    parser.add_argument("--efs-utils-conf-overrides", type=overrides_arg, default="",
                        metavar="SECTION:KEY=VALUE,...",
                        help="extra efs-utils.conf settings")
    add_bool_flag(parser, "--fips", default=os.environ.get("AWS_USE_FIPS_ENDPOINT") == "true",
                  help_text="use FIPS endpoints and FIPS mode in stunnel")
    parser.add_argument("--port-range-upper-bound", type=positive_int,
                        default=int(os.environ.get("PORT_RANGE_UPPER_BOUND", "20449")),
                        help="upper bound of the local ports efs-utils' TLS tunnels use")
    add_bool_flag(parser, "--efs-utils-debug", default=False,
                  help_text="debug logging in efs-utils and stunnel")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if not args.node_id:
        parser.error("--node-id (or CSI_NODE_NAME) is required")
    if args.mount_backend == "local" and not args.local_root:
        parser.error("--mount-backend local needs --local-root")
    try:  # settings that only make sense together (e.g. the port range) fail here, exit 2
        render(settings_from_args(args))
    except ConfigError as exc:
        parser.error(str(exc))
    from efs_csi_node.app import run_node  # after logging is configured

    return run(run_node(args), parser.prog)


if __name__ == "__main__":
    sys.exit(main())
