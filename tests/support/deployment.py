"""The driver deployed by its own chart onto the test control plane.

``install_chart`` renders the chart with real helm (``--kube-version`` of the running server)
and applies every object to the API server. ``ControllerPod`` and ``NodePod`` then run the
containers the chart's Deployment and DaemonSet describe, with the chart's own commands,
arguments and environment (``tests.support.pods``), as the chart's ServiceAccounts (their
TokenRequest tokens at the in-cluster path, ``testbed.in_cluster.pod_command``), never as
admin. The controller pod is efs-csi-controller plus the real csi-provisioner; the node pod is
efs-csi-node plus the registrar stand-in, on a real kubelet's root dir. The liveness-probe
sidecar is not run: it only turns Probe into HTTP for kubelet's liveness check.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from efs_csi.contract import NOT_READY_TAINT
from testbed.in_cluster import pod_command
from testbed.moto_server import MotoEndpoint
from tests.chart.render import find, render
from tests.support.cluster import (
    ClusterTools,
    ControlPlane,
    Daemon,
    Kubelet,
    free_port,
    wait_until,
)
from tests.support.pods import PodRunner, pod_spec

Json = dict[str, Any]
NAMESPACE = "kube-system"
DRIVER = "efs.csi.aws.com"
LEASE = "efs-csi-aws-com"  # csi-provisioner's leader-election lease: the driver name, sanitized
BIN = Path(sys.executable).parent


def install_chart(plane: ControlPlane, sets: Sequence[str] = ()) -> list[Json]:
    """``helm template`` of the chart for this server's version, applied; returns the objects."""
    manifests = render(sets=list(sets), kube_version=plane.version().lstrip("v"))
    plane.apply(manifests)
    return manifests


def _loopback_listeners(argv: list[str]) -> list[str]:
    """A pod listens on its own network namespace (every interface, or its pod IP, which
    PodRunner gives as 127.0.0.1); here, on loopback at a free port."""
    return [re.sub(r"^(--[\w-]+=)(?:0\.0\.0\.0|127\.0\.0\.1)?:\d+$",
                   lambda match: f"{match.group(1)}127.0.0.1:{free_port()}", arg)
            for arg in argv]


@dataclass
class PodProcesses:
    """The processes standing in for one pod's containers, restarted when they exit as
    kubelet would (restartPolicy Always) and counted, like a container's restartCount."""

    daemons: list[Daemon] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)
    _watcher: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start(self, daemon: Daemon) -> Daemon:
        self.daemons.append(daemon.start())
        self.restarts.setdefault(daemon.name, 0)
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._keep_running, daemon=True,
                                             name="pod-restarts")
            self._watcher.start()
        return daemon

    def _keep_running(self) -> None:
        while not self._stopping.wait(0.5):
            for daemon in list(self.daemons):
                if not daemon.alive() and not self._stopping.is_set():
                    self.restarts[daemon.name] += 1
                    daemon.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        for daemon in reversed(self.daemons):
            daemon.stop()
        self.daemons.clear()


def _run_container(pod: PodProcesses, runner: PodRunner, name: str, process_name: str,
                   logs: Path, *, env: Mapping[str, str],
                   service_account: Path | None) -> Daemon:
    """The container as a process; with the ServiceAccount's files only when the chart gives
    this container a token (``PodRunner.mounts_token``), as kubelet would."""
    local = runner.local(name, env)
    argv = _loopback_listeners(local.argv)
    if service_account is not None and runner.mounts_token(name):
        argv = pod_command(argv, service_account)
    return pod.start(Daemon(process_name, argv, logs, env={**os.environ, **local.env}))


def aws_environment(moto: MotoEndpoint) -> dict[str, str]:
    """moto as the EFS API; nothing may ask instance metadata."""
    return {**moto.environment(), "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"}


@dataclass
class ControllerPod:
    """efs-csi-controller and csi-provisioner as the chart's Deployment runs them."""

    plane: ControlPlane
    manifests: list[Json]
    moto: MotoEndpoint
    workdir: Path
    local_root: Path
    pod: PodProcesses = field(default_factory=PodProcesses)

    @property
    def deployment(self) -> Json:
        return find(self.manifests, "Deployment", "efs-csi-controller")

    def start(self) -> ControllerPod:
        tools = ClusterTools.find()
        spec = pod_spec(self.deployment)
        runner = PodRunner(
            self.deployment, self.workdir / "controller-pod",
            programs={"efs-csi-controller": str(BIN / "efs-csi-controller"),
                      "csi-provisioner": tools["csi-provisioner"]},
            host_paths={"/var/lib/efs-csi-local": self.local_root})
        account = self.plane.service_account_files(NAMESPACE, spec["serviceAccountName"])
        env = {**aws_environment(self.moto), **self.plane.in_cluster_environment()}
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        try:
            plugin = _run_container(self.pod, runner, "efs-plugin", "efs-csi-controller", logs,
                                    env=env, service_account=account)
            socket = runner.local_volume("socket-dir") / "csi.sock"
            wait_until("efs-csi-controller socket", socket.is_socket, 30,
                       diagnose=plugin.log_tail)
            provisioner = _run_container(self.pod, runner, "csi-provisioner", "csi-provisioner",
                                         logs, env=env, service_account=account)
            wait_until("csi-provisioner leading",
                       lambda: "successfully acquired lease" in provisioner.logs(), 60,
                       interval=0.2, diagnose=provisioner.log_tail)
        except BaseException:
            self.pod.stop()
            raise
        return self

    def logs(self) -> str:
        return "\n".join(daemon.logs() for daemon in self.pod.daemons)

    def stop(self) -> None:
        self.pod.stop()
        # csi-provisioner does not release its lease when stopped; the next test's would wait
        # out the lease duration (15 s) before leading. The pod is gone: end its lease now.
        self.plane.kubectl("-n", NAMESPACE, "delete", "lease", LEASE, "--ignore-not-found")


@dataclass
class NodePod:
    """efs-csi-node and the registrar as the chart's DaemonSet runs them on ``kubelet``'s node."""

    plane: ControlPlane
    manifests: list[Json]
    kubelet: Kubelet
    moto: MotoEndpoint
    local_root: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    pod: PodProcesses = field(default_factory=PodProcesses)
    plugin: Daemon | None = None
    _runner: PodRunner | None = None

    @property
    def daemonset(self) -> Json:
        return find(self.manifests, "DaemonSet", "efs-csi-node")

    @property
    def socket(self) -> Path:
        return self.kubelet.plugin_dir(DRIVER) / "csi.sock"

    def start(self, *, register: bool = True) -> NodePod:
        """Start efs-csi-node; with ``register``, also the registrar, and wait for CSINode."""
        tools = ClusterTools.find()
        spec = pod_spec(self.daemonset)
        self._runner = PodRunner(
            self.daemonset, self.kubelet.workdir / "node-pod",
            programs={"efs-csi-node": str(BIN / "efs-csi-node"),
                      "csi-driver-registrar": tools["registrar"]},
            host_paths={"/var/lib/kubelet": self.kubelet.root_dir,
                        "/var/lib/efs-csi-local": self.local_root},
            node_name=self.kubelet.node_name)
        # Bound to (a stand-in of) this node's pod, as kubelet's projected token is.
        account = self.plane.node_pod_service_account_files(
            NAMESPACE, spec["serviceAccountName"], self.kubelet.node_name)
        env = {**aws_environment(self.moto), **self.plane.in_cluster_environment(),
               **self.extra_env}
        try:
            self.plugin = _run_container(self.pod, self._runner, "efs-plugin",
                                         f"efs-csi-node-{self.kubelet.node_name}",
                                         self.kubelet.logs, env=env, service_account=account)
            wait_until("efs-csi-node socket", self.socket.is_socket, 30,
                       diagnose=self.plugin.log_tail)
            if register:
                self.start_registrar()
        except BaseException:
            self.pod.stop()
            raise
        return self

    def start_registrar(self) -> None:
        """Register the driver with kubelet, as node-driver-registrar does; wait for CSINode
        and for the node plugin to take its startup taint off (kubelet refuses pods that do
        not tolerate it, and these tests place pods without a scheduler)."""
        registrar = self.pod.start(Daemon(
            f"registrar-{self.kubelet.node_name}",
            self._runner_for_registrar().local(
                "csi-driver-registrar",
                image_defaults=["--plugin-registration-path=/registration"]).argv,
            self.kubelet.logs))
        wait_until("the driver in the node's CSINode", self.registered, 60, interval=0.2,
                   diagnose=registrar.log_tail)
        wait_until("the startup taint removed", self.untainted, 60, interval=0.2,
                   diagnose=self._plugin_log_tail)

    def untainted(self) -> bool:
        node = self.plane.get("node", self.kubelet.node_name)
        return not any(taint["key"] == NOT_READY_TAINT
                       for taint in node.get("spec", {}).get("taints") or [])

    def _plugin_log_tail(self) -> str:
        return self.plugin.log_tail() if self.plugin else ""

    def _runner_for_registrar(self) -> PodRunner:
        assert self._runner is not None, "start the node plugin first"
        return self._runner

    def registered(self) -> bool:
        csinode = self.plane.find("csinode", self.kubelet.node_name)
        drivers = (csinode or {}).get("spec", {}).get("drivers") or []
        return any(driver["name"] == DRIVER for driver in drivers)

    def logs(self) -> str:
        return "\n".join(daemon.logs() for daemon in self.pod.daemons)

    def stop(self) -> None:
        self.pod.stop()
        # The stand-in pod its token was bound to: with it, the token stops working too.
        self.plane.forget_node_pod(NAMESPACE, pod_spec(self.daemonset)["serviceAccountName"],
                                   self.kubelet.node_name)
