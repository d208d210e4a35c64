"""The node's start-up work against instance metadata and the Kubernetes API, in a short-lived
process of its own (``efs_csi_node.startup_helper`` starts it once the node serves):

    python -m efs_csi_node.startup_work --node-id NAME [--resolve-zone] [--remove-taint]
        [--kube-host URL [--kube-token-file PATH] [--kube-ca-file PATH]]
        [--imds-endpoint URL] [--imds-disabled] [--imds-timeout SECONDS]
        [--log-format json|console] [--log-level LEVEL]

Why a process: importing kubernetes-asyncio loads its ~767 model modules, about half a second
and 35-70 MiB that a node would otherwise keep for its whole life to read one label and patch
one taint, on every node of every cluster. Here that cost is paid once, after the node serves,
and given back when this process exits. This is the helper's composition root: it builds the
Kubernetes adapter itself.

What it does, in order, each step's result one JSON object per line on stdout:

1. ``--resolve-zone``: the zone from instance metadata, then from the Node's zone label
   (``efs_csi_node.topology``): ``{"zone": "us-east-1a"}``, or ``{"zone": null}`` for none;
2. ``--remove-taint`` (with ``--kube-host``): once kubelet lists the driver in the node's
   CSINode, the startup taint off the Node (``efs_csi_node.taint``):
   ``{"taint_removed": true}`` (false: it was not there).

Then it exits 0. A non-zero exit is a failure the node logs and retries with backoff; logs go
to stderr, the node's own log stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from efs_csi.cli import positive_float
from efs_csi.kube import Kube, KubeEndpoint
from efs_csi.logging import LOG_FORMATS, LOG_LEVELS, configure_logging, get_logger
from efs_csi_node.taint import TaintRemover
from efs_csi_node.topology import ImdsSettings, resolve_zone

_log = get_logger("node.startup_work")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m efs_csi_node.startup_work", allow_abbrev=False,
                                     description="efs-csi-node's start-up work (zone, taint)")
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--resolve-zone", action="store_true",
                        help="find the zone: instance metadata, then the Node's zone label")
    parser.add_argument("--remove-taint", action="store_true",
                        help="remove the startup taint once the driver is in CSINode")
    parser.add_argument("--kube-host", default=None, help="the API server's URL")
    parser.add_argument("--kube-token-file", type=Path, default=None)
    parser.add_argument("--kube-ca-file", type=Path, default=None)
    defaults = ImdsSettings()
    parser.add_argument("--imds-endpoint", default=defaults.endpoint)
    parser.add_argument("--imds-disabled", action="store_true")
    parser.add_argument("--imds-timeout", type=positive_float, default=defaults.timeout)
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="json")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    return parser


def _report(**result: object) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


async def work(args: argparse.Namespace) -> None:
    kube: Kube | None = None
    if args.kube_host:
        from efs_csi.adapters.kube import KubernetesAsyncioKube  # the cost this process exists for

        kube = KubernetesAsyncioKube(KubeEndpoint(host=args.kube_host,
                                                  token_file=args.kube_token_file,
                                                  ca_file=args.kube_ca_file))
    try:
        if args.resolve_zone:
            imds = ImdsSettings(endpoint=args.imds_endpoint, disabled=args.imds_disabled,
                                timeout=args.imds_timeout)
            _report(zone=await resolve_zone(configured=None, node_name=args.node_id,
                                            imds=imds, kube=kube))
        if args.remove_taint and kube is not None:
            remover = TaintRemover(kube, args.node_id)
            await remover.wait_registered()
            _report(taint_removed=await remover.remove_taint())
    finally:
        if kube is not None:
            await kube.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    asyncio.run(work(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
