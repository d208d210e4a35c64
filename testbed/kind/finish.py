"""The flow's last steps: what the chart's pods are told about instance metadata, the cleanup
of what the flow made (the example claim's access point and directory must go with it), and
`helm uninstall`, after which nothing of ours may be left running or mounted on a node."""

from __future__ import annotations

from testbed.kind import manifests, volumes
from testbed.kind.cluster import CONTROLLER_PODS, NODE_PODS, RELEASE, SYSTEM, wait_for
from testbed.kind.context import Context

# The chart's processes: the plugins (tini's command line and the Python process), their
# start-up helper (efs_csi_node.startup_work) and the sidecars. kind's own processes name the
# cluster, efs-csi-control-plane, efs-csi-worker: those do not match.
OUR_PROCESSES = (r"efs[-_]csi[-_](node|controller)([^-]|$)|csi-provisioner"
                 r"|csi-node-driver-registrar|/livenessprobe")
METADATA_OFF = {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"}


def check_metadata(ctx: Context) -> None:
    """Every container of ours runs with instance metadata disabled (kind/values.yaml): no
    SDK call in them ever tries 169.254.169.254."""
    for selector in (CONTROLLER_PODS, NODE_PODS):
        for pod in ctx.tools.get("pods", "-n", SYSTEM, "-l", selector)["items"]:
            container = next(c for c in pod["spec"]["containers"] if c["name"] == "efs-plugin")
            ctx.report.check(f"metadata: {pod['metadata']['name']} runs with "
                             "AWS_EC2_METADATA_DISABLED=true",
                             METADATA_OFF in container.get("env", []))


def clean_up(ctx: Context, shared: list[volumes.SharedVolume]) -> None:
    tools = ctx.tools
    tools.kubectl("delete", "pod", "-n", manifests.NAMESPACE, "-l", "app=efs-e2e",
                  "--wait=true", timeout=180)
    for volume in shared:
        tools.kubectl("delete", "pvc", "-n", manifests.NAMESPACE, volume.claim, "--wait=true",
                      "--ignore-not-found", timeout=180)
    dynamic = next(volume for volume in shared if volume.label == "dynamic")
    static = next(volume for volume in shared if volume.label == "static")
    wait_for(f"PV {dynamic.pv} to be deleted",
             lambda: not tools.kubectl("get", "pv", dynamic.pv, "--ignore-not-found"), 180)
    access_point = dynamic.handle.rsplit(":", 1)[-1]
    left = [p for p in ctx.api.access_points(dynamic.file_system)
            if p["AccessPointId"] == access_point]
    gone = tools.run([tools.docker_path, "exec", ctx.cluster.nodes()[0].name, "test", "-e",
                      f"{ctx.settings.local_root}/{dynamic.file_system}{dynamic.directory}"],
                     check=False).returncode != 0
    ctx.report.check("deleting the claim deleted its access point and its directory",
                     not left and gone,
                     f"access point left: {bool(left)}, directory left: {not gone}")
    tools.kubectl("delete", "pv", static.pv, "--ignore-not-found", timeout=120)
    ctx.api.delete_access_point(static.handle.rsplit(":", 1)[-1])
    tools.kubectl("delete", "storageclass", "efs-sc", "--ignore-not-found")
    tools.kubectl("delete", "namespace", manifests.NAMESPACE, "--wait=true", timeout=180)


def uninstall(ctx: Context) -> None:
    tools = ctx.tools
    tools.helm("uninstall", RELEASE, "--namespace", SYSTEM, "--wait", "--timeout", "3m")
    wait_for("the chart's pods to go", lambda: not tools.get(
        "pods", "-n", SYSTEM, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"], 180)
    for node in ctx.cluster.nodes():
        table = ctx.cluster.mount_table(node.name)
        left = [entry.mount_point for entry in table.entries
                if "efs.csi.aws.com" in entry.mount_point
                or "kubernetes.io~csi" in entry.mount_point]
        ctx.report.check(f"uninstall: no volume of ours stays mounted on {node.name}",
                         not left, ", ".join(left[:5]))
        processes = tools.run([tools.docker_path, "exec", node.name, "pgrep", "-af", OUR_PROCESSES],
                              check=False).stdout.strip()
        ctx.report.check(f"uninstall: no process of ours runs on {node.name}", not processes,
                         processes)
