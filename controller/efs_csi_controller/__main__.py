"""Command line of efs-csi-controller."""

from __future__ import annotations

import argparse
import os
import sys

from efs_csi.cli import (
    add_bool_flag,
    base_parser,
    non_negative_float,
    parse_args,
    positive_int,
    run,
)
from efs_csi_controller.gid import DEFAULT_MAX_AGE
from efs_csi_controller.tags import parse_tags


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser("efs-csi-controller", "CSI controller for Amazon EFS access points")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION"),
                        help="AWS region (default: AWS_REGION, then instance metadata)")
    parser.add_argument("--tags", default="",
                        help=r"tags for every access point: 'k:v k2:v2' (escape \: \  \\)")
    add_bool_flag(parser, "--delete-access-point-root-dir", default=False,
                  help_text="also delete an access point's directory on DeleteVolume")
    add_bool_flag(parser, "--adaptive-retry-mode", default=True,
                  help_text="use botocore's adaptive retry mode (client-side rate limiting)")
    parser.add_argument("--access-point-limit", type=positive_int, default=10000,
                        help="access points allowed per file system (the EFS quota)")
    parser.add_argument("--gid-inventory-max-age", type=non_negative_float,
                        default=DEFAULT_MAX_AGE, metavar="SECONDS",
                        help="how old a file system's listing of access points (GIDs in use, "
                             "client tokens) may be when a create starts before it is listed "
                             "again; other writers' access points are seen within this time "
                             "(0: list before every create)")
    parser.add_argument("--mount-backend", choices=("efs", "local"), default="efs",
                        help="how --delete-access-point-root-dir mounts a file system root")
    parser.add_argument("--local-root", default=None,
                        help="directory holding one subdirectory per file system (local backend)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if args.mount_backend == "local" and not args.local_root:
        parser.error("--mount-backend local needs --local-root")
    args.region = args.region or os.environ.get("AWS_DEFAULT_REGION")
    try:
        parse_tags(args.tags)
    except ValueError as exc:
        parser.error(str(exc))
    from efs_csi_controller.app import run_controller  # after logging is configured

    return run(run_controller(args), parser.prog)


if __name__ == "__main__":
    sys.exit(main())
