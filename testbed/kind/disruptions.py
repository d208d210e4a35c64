"""What happens to the node plugin while apps do I/O: its pods deleted (the DaemonSet makes new
ones), its process stopped (kubelet restarts it through the livenessprobe sidecar), its release
upgraded to another image tag. Each returns the window it disrupted and the plugin pods that
serve afterwards; the caller checks the apps' I/O and mounts against them.
"""

from __future__ import annotations

import functools
import time

from efs_csi.contract import NOT_READY_TAINT
from testbed.kind.cluster import RELEASE, SYSTEM, PluginPod, wait_for
from testbed.kind.context import Context


def _untainted(ctx: Context, node: str) -> bool:
    return not ctx.cluster.has_taint(node)


def delete_plugin_pods(ctx: Context, nodes: list[str]) -> tuple[float, float, dict[str, PluginPod]]:
    """Put the startup taint on every node, delete every plugin pod; the new pods must serve
    and take the taint off their own node."""
    before = ctx.cluster.plugin_pods()
    start = time.time()
    for node in nodes:
        ctx.tools.kubectl("taint", "node", node, f"{NOT_READY_TAINT}=:NoSchedule", "--overwrite")
    ctx.tools.kubectl("delete", "pod", "-n", SYSTEM, "--wait=false",
                      *[before[node].name for node in nodes])
    after = ctx.cluster.wait_plugins_ready(nodes, unlike=before)
    ready_at = time.time()
    ctx.report.figure("plugin pods replaced: seconds until every new pod was Ready",
                      round(ready_at - start, 1))
    for node in nodes:
        ctx.report.check(f"plugin pod deleted: the DaemonSet's new pod serves {node}",
                         after[node].uid != before[node].uid and after[node].ready,
                         f"{before[node].name} -> {after[node].name}")
    for node in nodes:
        try:
            wait_for(f"the startup taint to leave {node}",
                     functools.partial(_untainted, ctx, node), 90)
            removed = True
        except TimeoutError:
            removed = False
        ctx.report.check(f"startup taint: the new plugin pod took {NOT_READY_TAINT} off {node}",
                         removed)
    return start, time.time(), after


def stop_plugin_process(ctx: Context, node: str) -> tuple[float, float, dict[str, PluginPod]]:
    """SIGSTOP the node plugin's process on ``node``: it stops answering, the livenessprobe
    sidecar fails kubelet's probe, and kubelet restarts the container."""
    pod = ctx.cluster.plugin_pods()[node]
    # The container's first process is tini; the plugin is its child.
    tini = ctx.tools.on_node(node, "crictl", "inspect", "--output", "go-template",
                             "--template", "{{.info.pid}}", pod.container_id).strip()
    children = ctx.tools.on_node(node, "pgrep", "-P", tini).split()
    plugin = next(pid for pid in children
                  if "efs-csi-node" in ctx.tools.on_node(node, "cat", f"/proc/{pid}/cmdline"))
    start = time.time()
    ctx.tools.on_node(node, "kill", "-STOP", plugin)

    def restarted() -> PluginPod | None:
        now = ctx.cluster.plugin_pods().get(node)
        return now if now is not None and now.restarts > pod.restarts and now.ready else None

    after = wait_for("kubelet to restart the stopped plugin", restarted, 240, interval=1)
    end = time.time()
    ctx.report.figure("liveness: seconds from SIGSTOP to the restarted plugin serving",
                      round(end - start, 1))
    ctx.report.check(f"liveness: kubelet restarted the stopped plugin on {node}",
                     after.uid == pod.uid and after.restarts == pod.restarts + 1,
                     f"{pod.name}: restarts {pod.restarts} -> {after.restarts}")
    return start, end, ctx.cluster.plugin_pods()


def upgrade(ctx: Context, nodes: list[str]) -> tuple[float, float, dict[str, PluginPod]]:
    """`helm upgrade` the release to another image tag (the same images, tagged and loaded as a
    user would load new ones) and wait for the rollout. A release already on the upgrade tag
    (a second run) goes back to kind-up.sh's."""
    before = ctx.cluster.plugin_pods()
    current = {pod.image.rsplit(":", 1)[-1] for pod in before.values()}
    tag = ctx.settings.upgrade_tag if ctx.settings.upgrade_tag not in current else "kind"
    loaded_from = time.time()
    images = []
    for component in ("controller", "node"):
        ctx.tools.docker("tag", f"efs-csi-{component}:kind", f"efs-csi-{component}:{tag}")
        images.append(f"efs-csi-{component}:{tag}")
    ctx.tools.kind("load", "docker-image", "--name", ctx.tools.cluster, *images)
    ctx.report.figure("upgrade: seconds to tag and kind load the images",
                      round(time.time() - loaded_from, 1))
    start = time.time()
    ctx.tools.helm("upgrade", RELEASE, str(ctx.settings.chart), "--namespace", SYSTEM,
                   "--reuse-values", "--set", f"image.tag={tag}", "--wait", "--timeout", "5m")
    for kind in ("daemonset/efs-csi-node", "deployment/efs-csi-controller"):
        ctx.tools.kubectl("rollout", "status", "-n", SYSTEM, kind, "--timeout=300s", timeout=320)
    after = ctx.cluster.wait_plugins_ready(nodes, unlike=before)
    end = time.time()
    ctx.report.figure("upgrade: seconds for helm upgrade and the rollout", round(end - start, 1))
    for node in nodes:
        ctx.report.check(f"upgrade: {node} runs a new plugin pod on tag {tag}",
                         after[node].image.endswith(f":{tag}")
                         and after[node].uid != before[node].uid,
                         after[node].image)
    return start, end, after
