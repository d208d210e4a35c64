"""The node's start-up work against the Kubernetes API, in a short-lived process of its own
(``efs_csi_node.startup_helper`` starts it once the node serves):

    python -m efs_csi_node.startup_work --node-id NAME --kube-host URL
        [--kube-token-file PATH] [--kube-ca-file PATH] [--zone-label] [--remove-taint]
        [--log-format json|console] [--log-level LEVEL]

Why a process: the Kubernetes client (with aiohttp under it) costs tens of MiB that a node would
otherwise keep for its whole life to read one label and patch one taint, on every node of every
cluster. Here that cost is paid once, after the node serves, and given back when this process
exits. This is the helper's composition root: it builds the Kubernetes adapter itself.

The node starts it as the kernel's first OOM victim (``startup_helper.as_oom_victim``): under a
container memory limit too tight for both, the helper is the one killed, and the node goes on
serving (without the zone label) while it restarts the helper with backoff.

What it does, in order, each step's result one JSON object per line on stdout:

1. ``--zone-label``: the Node's zone label (``efs_csi_node.topology.zone_label``):
   ``{"zone": "us-east-1a"}``, or ``{"zone": null}`` when the Node has none. While the API
   cannot be read it retries with capped, jittered backoff and says why on each failure:
   ``{"error": "..."}``;
2. ``--remove-taint``: once kubelet lists the driver in the node's CSINode, the startup taint
   off the Node (``efs_csi_node.taint``): ``{"taint_removed": true}`` (false: it was not there).

Then it exits 0. A non-zero exit is a failure the node logs and retries with backoff; logs go
to stderr, the node's own log stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path

from efs_csi.errors import CsiError
from efs_csi.kube import Kube, KubeEndpoint
from efs_csi.logging import LOG_FORMATS, LOG_LEVELS, configure_logging, get_logger
from efs_csi_node.taint import TaintRemovalSettings, TaintRemover, jittered_backoff
from efs_csi_node.topology import zone_label

_log = get_logger("node.startup_work")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m efs_csi_node.startup_work", allow_abbrev=False,
                                     description="efs-csi-node's start-up work (zone label, "
                                                 "startup taint)")
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--kube-host", required=True, help="the API server's URL")
    parser.add_argument("--kube-token-file", type=Path, default=None)
    parser.add_argument("--kube-ca-file", type=Path, default=None)
    parser.add_argument("--zone-label", action="store_true",
                        help="report the Node's zone label")
    parser.add_argument("--remove-taint", action="store_true",
                        help="remove the startup taint once the driver is in CSINode")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="json")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    return parser


def _report(**result: object) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


async def read_zone_label(kube: Kube, node_name: str,
                          settings: TaintRemovalSettings | None = None) -> str | None:
    """The Node's zone label, retrying (and reporting each failure) until the API answers."""
    settings = settings or TaintRemovalSettings()
    failures = 0
    rng = random.Random()  # noqa: S311 - jitter, not security
    while True:
        try:
            return zone_label(await kube.get_node(node_name))
        except CsiError as exc:
            failures += 1
            _report(error=f"cannot read Node {node_name}: {exc.message}")
            delay = jittered_backoff(failures, settings, rng)
            _log.warning("cannot read the Node's zone label; retrying", node=node_name,
                         error=exc.message, retry_in_s=round(delay, 2))
            await asyncio.sleep(delay)


async def work(args: argparse.Namespace) -> None:
    from efs_csi.adapters.kube import KubernetesAsyncioKube  # the cost this process exists for

    kube = KubernetesAsyncioKube(KubeEndpoint(host=args.kube_host,
                                              token_file=args.kube_token_file,
                                              ca_file=args.kube_ca_file))
    try:
        if args.zone_label:
            _report(zone=await read_zone_label(kube, args.node_id))
        if args.remove_taint:
            remover = TaintRemover(kube, args.node_id)
            await remover.wait_registered()
            _report(taint_removed=await remover.remove_taint())
    finally:
        await kube.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    asyncio.run(work(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
