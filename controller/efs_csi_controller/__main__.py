"""Command line of efs-csi-controller: flags and environment in, a ``ControllerConfig`` out."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from efs_csi.cli import (
    add_bool_flag,
    base_parser,
    non_negative_float,
    parse_and_configure_logging,
    positive_int,
    serving_config,
)
from efs_csi.kube import in_cluster_or_none
from efs_csi.serving import run
from efs_csi_controller.config import ControllerConfig, RootDirectories
from efs_csi_controller.gid import DEFAULT_MAX_AGE
from efs_csi_controller.tags import LEGACY_CLUSTER_ID, parse_cluster_id, parse_tags


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The parser, with defaults from ``environ`` (none when not given)."""
    environ = environ or {}
    parser = base_parser("efs-csi-controller", "CSI controller for Amazon EFS access points",
                         environ)
    parser.add_argument("--region", default=environ.get("AWS_REGION"),
                        help="AWS region (default: AWS_REGION, then instance metadata)")
    parser.add_argument("--tags", default="",
                        help=r"tags for every access point: 'k:v k2:v2' (escape \: \  \\)")
    parser.add_argument("--cluster-id", default=LEGACY_CLUSTER_ID,
                        help="value of the efs.csi.aws.com/cluster tag on every access point, "
                             "unique to this cluster; the IAM policy matches it "
                             "(docs/iam-policy.md; default: 'true', the value every cluster "
                             "shared before this flag)")
    add_bool_flag(parser, "--delete-access-point-root-dir", default=False,
                  help_text="also delete an access point's directory on DeleteVolume, when "
                            "its tags (and, in a cluster, its PV) prove it this cluster's")
    add_bool_flag(parser, "--allow-shared-root-directories", default=False,
                  help_text="let CreateVolume make an access point whose root directory "
                            "equals, contains or lies in that of a live access point of a "
                            "volume in another namespace (the tenants then share files)")
    add_bool_flag(parser, "--adaptive-retry-mode", default=True,
                  help_text="rate-limit an EFS API on the client side while throttles "
                            "dominate its answers (retries are per API in both modes)")
    parser.add_argument("--access-point-limit", type=positive_int, default=10000,
                        help="access points allowed per file system (the EFS quota)")
    parser.add_argument("--gid-inventory-max-age", type=non_negative_float,
                        default=DEFAULT_MAX_AGE, metavar="SECONDS",
                        help="how old a file system's listing of access points (GIDs in use, "
                             "client tokens) may be when a create in a narrow GID range (under "
                             "100 x --access-point-limit GIDs) picks a GID, before it is listed "
                             "again (0: list before every such create); GIDs are never shared "
                             "however old it is: each new access point is checked after its "
                             "create")
    parser.add_argument("--mount-backend", choices=("efs", "local"), default="efs",
                        help="how --delete-access-point-root-dir mounts a file system root")
    parser.add_argument("--local-root", default=None,
                        help="directory holding one subdirectory per file system (local backend)")
    return parser


def controller_config(parser: argparse.ArgumentParser, args: argparse.Namespace,
                      environ: Mapping[str, str]) -> ControllerConfig:
    """The configuration; settings argparse cannot check exit 2 through ``parser.error``."""
    if args.mount_backend == "local" and not args.local_root:
        parser.error("--mount-backend local needs --local-root")
    try:
        extra_tags = parse_tags(args.tags)
        cluster_id = parse_cluster_id(args.cluster_id)
    except ValueError as exc:
        parser.error(str(exc))
    root_directories = None
    if args.delete_access_point_root_dir:
        root_directories = RootDirectories(
            mount_backend=args.mount_backend,
            local_root=Path(args.local_root) if args.local_root else None)
    return ControllerConfig(
        serving=serving_config(args),
        region=args.region or environ.get("AWS_DEFAULT_REGION") or None,
        # botocore's own reading of the variable.
        instance_metadata_disabled=environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true",
        kube=in_cluster_or_none(environ, without="fileSystemIdConfigRef/SecretRef unavailable"),
        extra_tags=extra_tags,
        adaptive_retry_mode=args.adaptive_retry_mode,
        access_point_limit=args.access_point_limit,
        gid_inventory_max_age=args.gid_inventory_max_age,
        root_directories=root_directories,
        cluster_id=cluster_id,
        allow_shared_root_directories=args.allow_shared_root_directories,
    )


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ  # the one reading of it
    parser = build_parser(environ)
    config = controller_config(parser, parse_and_configure_logging(parser, argv), environ)
    from efs_csi_controller.app import run_controller  # after logging is configured

    return run(run_controller(config=config), parser.prog)


if __name__ == "__main__":
    sys.exit(main())
