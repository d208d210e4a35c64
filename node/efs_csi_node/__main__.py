"""Command line of efs-csi-node: flags and environment in, a ``NodeConfig`` out."""

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
    non_negative_int,
    parse_and_configure_logging,
    positive_float,
    positive_int,
    serving_config,
)
from efs_csi.kube import in_cluster_or_none
from efs_csi.mounting.efs_leftovers import EFS_UTILS_STATE_DIR
from efs_csi.serving import run
from efs_csi_node.config import NodeConfig
from efs_csi_node.efs_utils.config import (
    DEFAULT_PORT_RANGE_UPPER_BOUND,
    ConfigError,
    EfsUtilsSettings,
    render,
)
from efs_csi_node.efs_utils.startup import EfsUtilsConfig, overrides_arg
from efs_csi_node.mount_health import DEFAULT_PERIOD_S
from efs_csi_node.taint import taint_removal_enabled
from efs_csi_node.tls_policy import WEAKENING_OPTIONS, parse_allowed_options
from efs_csi_node.topology import ImdsSettings
from efs_csi_node.usage_walk import DEFAULT_WALK_CONCURRENCY
from efs_csi_node.volume_stats import CollectorSettings

# Each operation in flight is a thread of the walk: a sane ceiling, far above what helps.
MAX_WALK_CONCURRENCY = 256


def walk_concurrency(text: str) -> int:
    value = positive_int(text)
    if value > MAX_WALK_CONCURRENCY:
        raise argparse.ArgumentTypeError(
            f"expected an integer from 1 to {MAX_WALK_CONCURRENCY}, got {text!r}")
    return value


def insecure_mount_options(text: str) -> frozenset[str]:
    try:
        return parse_allowed_options(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The parser, with defaults from ``environ`` (none when not given)."""
    environ = environ or {}
    parser = base_parser("efs-csi-node", "CSI node plugin for Amazon EFS", environ)
    parser.add_argument("--node-id", default=environ.get("CSI_NODE_NAME"),
                        help="this node's name (default: CSI_NODE_NAME)")
    parser.add_argument("--availability-zone", default=None,
                        help="this node's zone (default: instance metadata, then Node label)")
    parser.add_argument("--region", default=environ.get("AWS_REGION"))
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
    parser.add_argument("--mount-health-period", type=non_negative_float,
                        default=DEFAULT_PERIOD_S, metavar="SECONDS",
                        help="seconds between checks that every staged volume's mount answers "
                             "(the efs_csi_node_volume_stale metric; 0: no checks)")
    add_bool_flag(parser, "--remove-not-ready-taint",
                  default=not environ.get("DISABLE_TAINT_WATCHER"),
                  help_text="remove the efs.csi.aws.com/agent-not-ready taint once serving")
    parser.add_argument("--efs-utils-config-dir", default="/var/amazon/efs",
                        help="efs-utils configuration directory (a host directory)")
    parser.add_argument("--efs-utils-legacy-config-dir", default="/etc/amazon/efs-legacy",
                        help="where an older release kept efs-utils state (migrated once)")
    parser.add_argument("--efs-utils-state-dir", default=str(EFS_UTILS_STATE_DIR),
                        help="efs-utils' state directory, where the node removes what a killed "
                             "mount.efs left (efs-utils fixes it at /var/run/efs; another "
                             "value only for a node run outside its image, e.g. in tests)")
    parser.add_argument("--efs-utils-conf-overrides", type=overrides_arg, default="",
                        metavar="SECTION:KEY=VALUE,...",
                        help="extra efs-utils.conf settings")
    add_bool_flag(parser, "--fips", default=environ.get("AWS_USE_FIPS_ENDPOINT") == "true",
                  help_text="use FIPS endpoints, and FIPS mode in efs-proxy (the TLS tunnel)")
    # A string default goes through ``type`` too: a bad PORT_RANGE_UPPER_BOUND is a usage error
    # naming the flag, and --help still works.
    parser.add_argument("--port-range-upper-bound", type=positive_int,
                        default=environ.get("PORT_RANGE_UPPER_BOUND",
                                            str(DEFAULT_PORT_RANGE_UPPER_BOUND)),
                        help="upper bound of the local ports efs-utils' TLS tunnels use "
                             "(default: PORT_RANGE_UPPER_BOUND, else 20449)")
    add_bool_flag(parser, "--efs-utils-debug", default=False,
                  help_text="debug logging in efs-utils and efs-proxy (its TLS tunnel)")
    # TLS to EFS: what a volume (a tenant) or an override may weaken; nothing unless allowed
    # (efs_csi_node.tls_policy, docs/encryption-in-transit.md).
    parser.add_argument("--allow-insecure-mount-options", type=insecure_mount_options,
                        default=frozenset(), metavar="|".join(WEAKENING_OPTIONS),
                        help="comma-separated mount options that weaken TLS to EFS which "
                             "volumes may use (default: none)")
    add_bool_flag(parser, "--allow-insecure-efs-utils-conf", default=False,
                  help_text="let --efs-utils-conf-overrides weaken TLS to EFS (host-name "
                            "check, CA file, DNS names)")
    return parser


def node_config(parser: argparse.ArgumentParser, args: argparse.Namespace,
                environ: Mapping[str, str]) -> NodeConfig:
    """The configuration; settings argparse cannot check exit 2 through ``parser.error``."""
    if not args.node_id:
        parser.error("--node-id (or CSI_NODE_NAME) is required")
    if args.mount_backend == "local" and not args.local_root:
        parser.error("--mount-backend local needs --local-root")
    efs_utils = EfsUtilsSettings(
        region=args.region or None, fips=bool(args.fips),
        port_range_upper_bound=args.port_range_upper_bound, debug=bool(args.efs_utils_debug),
        overrides=tuple(args.efs_utils_conf_overrides),
        allow_insecure=bool(args.allow_insecure_efs_utils_conf))
    try:  # settings that only make sense together (e.g. the port range) fail here, exit 2
        render(efs_utils)
    except ConfigError as exc:
        parser.error(str(exc))
    legacy = args.efs_utils_legacy_config_dir
    volume_stats = None
    if args.vol_metrics_opt_in:
        volume_stats = CollectorSettings(
            refresh_period_s=args.vol_metrics_refresh_period * 60,
            walks_per_file_system=args.vol_metrics_fs_rate_limit,
            walk_concurrency=args.vol_metrics_walk_concurrency)
    return NodeConfig(
        serving=serving_config(args),
        node_id=args.node_id,
        availability_zone=args.availability_zone,
        imds=ImdsSettings.from_environment(environ),
        kube=in_cluster_or_none(environ, without="no zone label lookup or taint removal"),
        region=args.region,
        efs_utils=EfsUtilsConfig(efs_utils, Path(args.efs_utils_config_dir),
                                 Path(legacy) if legacy else None,
                                 Path(args.efs_utils_state_dir)),
        mount_backend=args.mount_backend,
        local_root=Path(args.local_root) if args.local_root else None,
        mount_timeout=args.mount_timeout,
        unmount_timeout=args.unmount_timeout,
        max_inflight_mount_calls=args.max_inflight_mount_calls,
        volume_attach_limit=args.volume_attach_limit,
        volume_stats=volume_stats,
        remove_not_ready_taint=taint_removal_enabled(args.remove_not_ready_taint, environ),
        log_format=args.log_format,
        log_level=args.log_level,
        allowed_insecure_mount_options=args.allow_insecure_mount_options,
        mount_health_period=args.mount_health_period,
    )


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ  # the one reading of it
    parser = build_parser(environ)
    config = node_config(parser, parse_and_configure_logging(parser, argv), environ)
    from efs_csi_node.app import run_node  # after logging is configured

    return run(run_node(config=config), parser.prog)


if __name__ == "__main__":
    sys.exit(main())
