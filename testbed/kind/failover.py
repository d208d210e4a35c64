"""Controller failover: two controller replicas, csi-provisioner's leader election deciding
which one provisions. A burst of claims is created at once on a file system of its own, and the
leader's pod is deleted as soon as the first claim binds. Every claim must still bind, each
with an access point of its own GID, and deleting them all must leave no access point behind
(none made twice by the old and the new leader, none forgotten)."""

from __future__ import annotations

import functools
import time
from typing import Any

from efs_csi.contract import PLUGIN_NAME
from testbed.kind import manifests
from testbed.kind.cluster import SYSTEM, wait_for
from testbed.kind.context import Context

STORAGE_CLASS = "efs-e2e-burst"
LEASE = PLUGIN_NAME.replace(".", "-")  # csi-provisioner's lease: the driver name, dots as dashes


def _holder(ctx: Context) -> str:
    """The lease's holder: csi-provisioner's identity, a random name of its own."""
    lease = ctx.tools.get("lease", LEASE, "-n", SYSTEM)
    return str(lease["spec"].get("holderIdentity") or "")


def _leading_pod(ctx: Context, pods: set[str]) -> str | None:
    """The controller pod whose csi-provisioner leads: the lease names no pod, the leader's
    log says it acquired the lease (client-go's leader election)."""
    for pod in sorted(pods):
        log = ctx.tools.kubectl("logs", "-n", SYSTEM, pod, "-c", "csi-provisioner", check=False)
        if "successfully acquired lease" in log:
            return pod
    return None


def _new_holder(ctx: Context, old: str) -> str | None:
    holder = _holder(ctx)
    return holder if holder and holder != old else None


def _ready_controllers(ctx: Context) -> list[dict[str, Any]] | None:
    pods = ctx.cluster.controller_pods()
    ready = [pod for pod in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in pod["status"].get("conditions") or [])]
    return ready if len(pods) == 2 and len(ready) == 2 else None


def _phases(ctx: Context, names: set[str]) -> dict[str, dict[str, Any]]:
    items = ctx.tools.get("pvc", "-n", manifests.NAMESPACE)["items"]
    return {item["metadata"]["name"]: item for item in items if item["metadata"]["name"] in names}


def _bound(claims: dict[str, dict[str, Any]]) -> int:
    return sum(1 for claim in claims.values() if claim["status"].get("phase") == "Bound")


def run(ctx: Context, file_system: str) -> None:
    tools, report, count = ctx.tools, ctx.report, ctx.settings.burst
    controllers = wait_for("two Ready controller replicas",
                           functools.partial(_ready_controllers, ctx), 180)
    names = {pod["metadata"]["name"] for pod in controllers}
    leader = wait_for("a csi-provisioner leader", functools.partial(_leading_pod, ctx, names), 120)
    holder = _holder(ctx)
    report.check("failover: two controller replicas, one of them the leader",
                 len(names) == 2, f"leader {leader} of {sorted(names)}")

    tools.kubectl("delete", "storageclass", STORAGE_CLASS, "--ignore-not-found")
    tools.apply([manifests.namespace(),
                 manifests.storage_class(STORAGE_CLASS, {
                     "provisioningMode": "efs-ap", "fileSystemId": file_system,
                     "directoryPerms": "700", "basePath": "/burst"})])
    claim_names = {f"burst-{i:02d}" for i in range(count)}
    started = time.monotonic()
    tools.apply([manifests.claim(name, STORAGE_CLASS) for name in sorted(claim_names)])
    wait_for("the first claim of the burst to bind",
             lambda: _bound(_phases(ctx, claim_names)) > 0, 120, interval=0.2)
    bound_before = _bound(_phases(ctx, claim_names))
    deleted_at = time.monotonic()
    tools.kubectl("delete", "pod", "-n", SYSTEM, leader, "--wait=false")
    report.check("failover: the leader was deleted mid-burst", bound_before < count,
                 f"{bound_before} of {count} claims bound when {leader} was deleted")
    wait_for("another csi-provisioner to take the lease",
             functools.partial(_new_holder, ctx, holder), 180, interval=0.2)
    failover_s = round(time.monotonic() - deleted_at, 1)
    report.figure("failover: seconds from deleting the leader to a new leader", failover_s)
    new_leader = wait_for("the new leader's pod", functools.partial(
        _leading_pod, ctx, {pod["metadata"]["name"] for pod in ctx.cluster.controller_pods()}
        - {leader}), 60)
    wait_for(f"all {count} claims to bind",
             lambda: _bound(_phases(ctx, claim_names)) == count, 300, interval=1)
    report.figure(f"failover: seconds for all {count} claims to bind",
                  round(time.monotonic() - started, 1))
    report.check(f"failover: all {count} claims Bound after the leader changed", True,
                 f"new leader {new_leader}")

    claims = _phases(ctx, claim_names)
    handles = [tools.get("pv", claim["spec"]["volumeName"])["spec"]["csi"]["volumeHandle"]
               for claim in claims.values()]
    points = {point["AccessPointId"]: point for point in ctx.api.access_points(file_system)}
    gids = [points[handle.rsplit(":", 1)[-1]]["PosixUser"]["Gid"]
            for handle in handles if handle.rsplit(":", 1)[-1] in points]
    report.check(f"failover: {count} claims, {count} access points, {count} distinct GIDs",
                 len(gids) == count and len(set(gids)) == count and len(points) == count,
                 f"{len(set(gids))} distinct GIDs over {len(gids)} claims; "
                 f"{len(points)} access points on the file system")

    tools.kubectl("delete", "pvc", "-n", manifests.NAMESPACE, *sorted(claim_names),
                  "--wait=true", timeout=300)
    volumes = {claim["spec"]["volumeName"] for claim in claims.values()}
    wait_for("the burst's volumes to be deleted",
             lambda: not volumes & {item["metadata"]["name"]
                                    for item in tools.get("pv")["items"]}, 300, interval=1)
    left = ctx.api.access_points(file_system)
    report.check("failover: no access point without a volume after deleting every claim",
                 not left, f"{len(left)} left: {[p['AccessPointId'] for p in left][:5]}")
    tools.kubectl("delete", "storageclass", STORAGE_CLASS)
