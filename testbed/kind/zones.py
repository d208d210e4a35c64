"""Zones: each node labelled with a zone of its own (kind-up.sh), the node plugins report them
(NodeGetInfo's topology, which kubelet writes into CSINode and the Node's labels), and a
one-zone file system's volume, with enforceZoneAffinity, brings its pod to that zone's node."""

from __future__ import annotations

import functools

from efs_csi.contract import PLUGIN_NAME, TOPOLOGY_ZONE_KEY
from testbed.kind import manifests
from testbed.kind.cluster import Node, wait_for
from testbed.kind.context import Context


def check_topology(ctx: Context, nodes: list[Node]) -> None:
    zones = [node.zone for node in nodes]
    ctx.report.check("zones: each node has a zone of its own",
                     None not in zones and len(set(zones)) == len(nodes),
                     ", ".join(f"{node.name}={node.zone}" for node in nodes))
    for node in nodes:
        keys = wait_for(f"CSINode {node.name} to list {PLUGIN_NAME}",
                        functools.partial(ctx.cluster.csi_node_topology, node.name), 60)
        ctx.report.check(f"zones: NodeGetInfo's topology reached CSINode {node.name}",
                         keys == [TOPOLOGY_ZONE_KEY], f"topology keys {keys}")


def check_placement(ctx: Context, nodes: list[Node]) -> None:
    """A one-zone file system per node's zone; its pod must run on that node."""
    tools, planned = ctx.tools, []
    for node in nodes:
        assert node.zone is not None
        file_system = ctx.file_system(f"kind-e2e-one-zone-{node.zone}", zone=node.zone)
        name = f"one-zone-{node.zone}"
        planned.append((node, name))
        # StorageClass parameters are immutable: one an interrupted run left goes first.
        tools.kubectl("delete", "storageclass", name, "--ignore-not-found")
        tools.apply([
            manifests.storage_class(name, {"provisioningMode": "efs-ap",
                                           "fileSystemId": file_system,
                                           "directoryPerms": "700",
                                           "enforceZoneAffinity": "true"}),
            manifests.claim(name, name),
            manifests.writer(name, name, node=None)])
    pods = ctx.cluster.wait_pods_ready([name for _, name in planned], manifests.NAMESPACE)
    for node, name in planned:
        where = pods[name]["spec"]["nodeName"]
        pv = tools.get("pvc", name, "-n", manifests.NAMESPACE)["spec"]["volumeName"]
        terms = tools.get("pv", pv)["spec"].get("nodeAffinity", {}).get("required", {})
        ctx.report.check(f"zones: the {node.zone} file system's pod runs on {node.name}",
                         where == node.name, f"scheduled to {where}; PV node affinity {terms}")
    tools.kubectl("delete", "pod", "-n", manifests.NAMESPACE, "--wait=true",
                  *[name for _, name in planned], timeout=180)
    tools.kubectl("delete", "pvc", "-n", manifests.NAMESPACE, "--wait=true",
                  *[name for _, name in planned], timeout=180)
    for _, name in planned:
        tools.kubectl("delete", "storageclass", name)
