"""What the flow reads from the cluster: nodes, the chart's pods, our volumes' mounts on each
node, the node plugin's log, and waiting for the cluster to get somewhere."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from efs_csi.contract import NOT_READY_TAINT, PLUGIN_NAME, TOPOLOGY_ZONE_KEY
from efs_csi.mounting.mountinfo import MountTable
from testbed.kind.commands import CommandFailed, Tools
from testbed.kind.mounts import parse_table

SYSTEM = "kube-system"
RELEASE = "efs-csi"
NODE_PODS = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=node"
CONTROLLER_PODS = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=controller"
PLUGIN_CONTAINER = "efs-plugin"

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float,
             interval: float = 0.5) -> T:
    """Call ``probe`` until it returns something other than None or False; returns that."""
    end = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except CommandFailed:
            value = None  # the API may be busy for a moment (e.g. during a rollout)
        if value is not None and value is not False:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"waited {timeout:.0f}s for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class Node:
    name: str
    zone: str | None
    taints: tuple[str, ...]  # keys


@dataclass(frozen=True)
class PluginPod:
    name: str
    uid: str
    node: str
    ready: bool
    image: str
    restarts: int
    container_id: str  # the efs-plugin container's, without the runtime prefix


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


class Cluster:
    def __init__(self, tools: Tools) -> None:
        self.tools = tools

    def nodes(self) -> list[Node]:
        items = self.tools.get("nodes")["items"]
        return [Node(item["metadata"]["name"],
                     item["metadata"].get("labels", {}).get(TOPOLOGY_ZONE_KEY),
                     tuple(taint["key"] for taint in item["spec"].get("taints") or []))
                for item in sorted(items, key=lambda item: item["metadata"]["name"])]

    def csi_node_topology(self, node: str) -> list[str] | None:
        """The topology keys CSINode lists for our driver on ``node`` (None: not registered)."""
        drivers = self.tools.get("csinode", node)["spec"].get("drivers") or []
        for driver in drivers:
            if driver["name"] == PLUGIN_NAME:
                return list(driver.get("topologyKeys") or [])
        return None

    def plugin_pods(self) -> dict[str, PluginPod]:
        """The node plugin's pods that are not terminating, by node."""
        pods = {}
        for item in self.tools.get("pods", "-n", SYSTEM, "-l", NODE_PODS)["items"]:
            if item["metadata"].get("deletionTimestamp") or not item["spec"].get("nodeName"):
                continue
            statuses = {s["name"]: s for s in item.get("status", {}).get("containerStatuses") or []}
            plugin = statuses.get(PLUGIN_CONTAINER, {})
            containers = {c["name"]: c for c in item["spec"]["containers"]}
            pods[item["spec"]["nodeName"]] = PluginPod(
                name=item["metadata"]["name"], uid=item["metadata"]["uid"],
                node=item["spec"]["nodeName"], ready=_ready(item),
                image=containers[PLUGIN_CONTAINER]["image"],
                restarts=int(plugin.get("restartCount", 0)),
                container_id=str(plugin.get("containerID", "")).split("://")[-1])
        return pods

    def controller_pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.tools.get(
            "pods", "-n", SYSTEM, "-l", CONTROLLER_PODS)["items"]
        return [item for item in items if not item["metadata"].get("deletionTimestamp")]

    def wait_plugins_ready(self, nodes: Iterable[str], timeout: float = 180,
                           unlike: dict[str, PluginPod] | None = None) -> dict[str, PluginPod]:
        """Wait until every node runs a Ready plugin pod (other than those in ``unlike``)."""
        wanted = list(nodes)

        def ready() -> dict[str, PluginPod] | None:
            pods = self.plugin_pods()
            for node in wanted:
                pod = pods.get(node)
                if pod is None or not pod.ready:
                    return None
                if unlike is not None and node in unlike and unlike[node].uid == pod.uid:
                    return None
            return pods

        return wait_for("the node plugin to be Ready on every node", ready, timeout)

    def pod(self, name: str, namespace: str) -> dict[str, Any]:
        found: dict[str, Any] = self.tools.get("pod", name, "-n", namespace)
        return found

    def wait_pods_ready(self, names: Iterable[str], namespace: str,
                        timeout: float = 180) -> dict[str, dict[str, Any]]:
        wanted = list(names)

        def ready() -> dict[str, dict[str, Any]] | None:
            pods = {name: self.pod(name, namespace) for name in wanted}
            return pods if all(_ready(pod) for pod in pods.values()) else None

        return wait_for(f"pods {', '.join(wanted)} to be Ready", ready, timeout)

    def mount_table(self, node: str) -> MountTable:
        """The mount table of a kind node (its init process's, which kubelet shares)."""
        return parse_table(self.node_mountinfo(node))

    def node_mountinfo(self, node: str) -> str:
        return self.tools.on_node(node, "cat", "/proc/1/mountinfo")

    def container_mountinfo(self, node: str, container_id: str) -> str:
        """The mountinfo of a container on ``node`` (its first process's, by the runtime's
        container id): what the processes in that container see mounted."""
        pid = self.tools.on_node(node, "crictl", "inspect", "--output", "go-template",
                                 "--template", "{{.info.pid}}", container_id).strip()
        return self.tools.on_node(node, "cat", f"/proc/{pid}/mountinfo")

    def container_id(self, pod: str, namespace: str, container: str) -> str:
        """The runtime's id of a running container of ``pod`` (without the runtime prefix)."""
        statuses = self.pod(pod, namespace).get("status", {}).get("containerStatuses") or []
        found = next(s for s in statuses if s["name"] == container)
        return str(found["containerID"]).split("://")[-1]

    def has_taint(self, node: str, key: str = NOT_READY_TAINT) -> bool:
        taints = self.tools.get("node", node)["spec"].get("taints") or []
        return any(taint["key"] == key for taint in taints)

    def plugin_log(self, pod: str) -> str:
        return self.tools.kubectl("logs", "-n", SYSTEM, pod, "-c", PLUGIN_CONTAINER,
                                  timeout=60)


_RPC_LINE = re.compile(r"\brpc\b.*\bmethod=(?P<method>\w+)")
_FIELD = re.compile(r"\b(?P<key>code|volume_id|target_path)=(?P<value>\S+)")


@dataclass(frozen=True)
class RpcCall:
    method: str
    code: str
    volume_id: str
    target_path: str


def rpc_calls(log: str) -> list[RpcCall]:
    """The CSI calls a plugin's log records (one line each, efs_csi.rpc.hook), whether it logs
    for people (console: ``... rpc ... key=value ...``) or for collectors (JSON lines)."""
    calls = []
    for line in log.splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == "rpc" and "method" in record:
                calls.append(RpcCall(str(record["method"]), str(record.get("code", "")),
                                     str(record.get("volume_id", "")),
                                     str(record.get("target_path", ""))))
            continue
        match = _RPC_LINE.search(line)
        if match is None:
            continue
        fields = {m["key"]: m["value"].strip("'\"") for m in _FIELD.finditer(line)}
        calls.append(RpcCall(match["method"], fields.get("code", ""),
                             fields.get("volume_id", ""), fields.get("target_path", "")))
    return calls
