"""The flow, in order. Two rounds of apps on the shared volumes: in the first the node plugin
pods are deleted and then a plugin process is stopped while the apps do I/O, in the second the
release is upgraded to another image tag; after each round the apps are deleted, and their
volumes must be unpublished and unstaged by the plugin pods that serve by then. While apps run,
before and after each disruption, the staging mounts must be one mount seen alike by the plugin
container that serves then and by its node (Bidirectional propagation), and what each app sees
at /data. Then the controller failover, the zones, the cleanup and `helm uninstall`.
"""

from __future__ import annotations

from testbed.kind import disruptions, failover, finish, volumes, zones
from testbed.kind.cluster import PluginPod
from testbed.kind.context import Context

FILE_SYSTEM_TOKEN = "kind-e2e"
BURST_FILE_SYSTEM_TOKEN = "kind-e2e-burst"


def run(ctx: Context) -> None:
    report, cluster = ctx.report, ctx.cluster
    nodes = cluster.nodes()
    names = [node.name for node in nodes]
    if not report.check("the cluster has two nodes", len(nodes) == 2, ", ".join(names)):
        return
    shared: list[volumes.SharedVolume] = []
    plugins: dict[str, PluginPod] = {}

    with report.step("setup: file system, dynamic and static volume"):
        file_system = ctx.file_system(FILE_SYSTEM_TOKEN)
        shared = volumes.prepare(ctx, file_system)
    with report.step("zones: NodeGetInfo's topology in CSINode"):
        zones.check_topology(ctx, nodes)
    with report.step("metadata"):
        finish.check_metadata(ctx)

    with report.step("round 1: apps on both nodes"):
        first = volumes.start_apps(ctx, shared, names, "r1")
        volumes.check_sharing(ctx, first, "r1")
        volumes.check_mounts(ctx, first, names, "r1 running")
        volumes.check_propagation(ctx, first, cluster.plugin_pods(), "r1 running")
    with report.step("round 1: plugin pods deleted during I/O"):
        start, end, plugins = disruptions.delete_plugin_pods(ctx, names)
        volumes.check_io_went_on(ctx, first, start, end, "plugin pods deleted")
        volumes.check_mounts(ctx, first, names, "plugin pods deleted")
        volumes.check_propagation(ctx, first, plugins, "plugin pods deleted")
    with report.step("round 1: plugin process stopped (liveness)"):
        start, end, plugins = disruptions.stop_plugin_process(ctx, names[1])
        volumes.check_io_went_on(ctx, first, start, end, "liveness")
        volumes.check_mounts(ctx, first, names, "liveness")
        volumes.check_propagation(ctx, first, plugins, "liveness")
    with report.step("round 1: apps deleted"):
        volumes.stop_apps(ctx, first, plugins, "r1, after new plugin pods")

    with report.step("round 2: apps on both nodes"):
        second = volumes.start_apps(ctx, shared, names, "r2")
        volumes.check_mounts(ctx, second, names, "r2 running")
    with report.step("round 2: helm upgrade during I/O"):
        start, end, plugins = disruptions.upgrade(ctx, names)
        volumes.check_io_went_on(ctx, second, start, end, "upgrade")
        volumes.check_mounts(ctx, second, names, "upgrade")
        volumes.check_propagation(ctx, second, plugins, "upgrade")
    with report.step("round 2: apps deleted"):
        volumes.stop_apps(ctx, second, plugins, "r2, after the upgrade")

    with report.step("controller failover"):
        failover.run(ctx, ctx.file_system(BURST_FILE_SYSTEM_TOKEN))
    with report.step("zones: one-zone volumes placed"):
        zones.check_placement(ctx, nodes)
    with report.step("cleanup"):
        finish.clean_up(ctx, shared)
    with report.step("helm uninstall"):
        finish.uninstall(ctx)
