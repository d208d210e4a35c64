"""The driver as a cluster runs it: chart objects in a real API server, csi-provisioner and
kubelet calling efs-csi-controller and efs-csi-node, moto as EFS, the local backend as data."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from efs_csi.contract import NOT_READY_TAINT
from testbed.efs_proxy import EfsProxy, make_file_system
from testbed.moto_server import REGION, MotoEndpoint, running_moto
from tests.support.cluster import ControlPlane, Kubelet, wait_until
from tests.support.deployment import ControllerPod, NodePod, install_chart
from tests.support.fixtures.cluster import cluster_dir, control_plane  # noqa: F401 - fixtures

Json = dict[str, Any]
CHART_SETS = ("region=us-east-1", "mountBackend=local")


@dataclass
class Efs:
    """The EFS API the driver uses: moto behind testbed/efs_proxy.py (which adds what
    real EFS does and moto does not, such as FileSystemNotFound), as an operator sees it."""

    endpoint: MotoEndpoint  # the proxy's address, in the shape the helpers take
    proxy: EfsProxy

    def __post_init__(self) -> None:
        self.client = boto3.client("efs", region_name=REGION, endpoint_url=self.endpoint.url,
                                   aws_access_key_id="testing",
                                   aws_secret_access_key="testing")

    def create_file_system(self, one_zone: str | None = None) -> str:
        return make_file_system(self.endpoint.url, one_zone=one_zone).file_system_id

    def access_point(self, access_point_id: str) -> Json | None:
        try:
            reply = self.client.describe_access_points(AccessPointId=access_point_id)
        except self.client.exceptions.AccessPointNotFound:
            return None
        return reply["AccessPoints"][0]  # type: ignore[no-any-return]

    def access_points(self, fs_id: str) -> list[Json]:
        reply = self.client.describe_access_points(FileSystemId=fs_id)
        return reply["AccessPoints"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def efs() -> Iterator[Efs]:
    with running_moto() as moto, EfsProxy(moto.url) as proxy:
        yield Efs(MotoEndpoint(proxy.url), proxy)


@pytest.fixture(scope="module")
def local_root(cluster_dir: Path, request: pytest.FixtureRequest) -> Path:
    """The local backend's data: file system fs-x is the directory <local_root>/fs-x."""
    root = cluster_dir / "data" / request.module.__name__.rsplit(".", 1)[-1]
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass
class Driver:
    plane: ControlPlane
    efs: Efs
    local_root: Path
    controller: ControllerPod
    manifests: list[Json]

    def reinstall(self, sets: Sequence[str] = ()) -> None:
        """Apply the chart again with other values (as ``helm upgrade`` would)."""
        self.manifests = install_chart(self.plane, [*CHART_SETS, *sets])

    def new_file_system(self, one_zone: str | None = None) -> str:
        fs_id = self.efs.create_file_system(one_zone)
        (self.local_root / fs_id).mkdir()
        return fs_id


@pytest.fixture(scope="module")
def driver(control_plane: ControlPlane, efs: Efs, local_root: Path, cluster_dir: Path,
           kubelet_factory: Callable[..., Kubelet],
           request: pytest.FixtureRequest) -> Iterator[Driver]:
    """The chart installed with its defaults (plus a region and the local backend), the
    controller pod (efs-csi-controller + csi-provisioner) running as the chart says, and one
    node (kubelet + the node pod) registered: csi-provisioner, with the chart's Topology
    feature gate, provisions nothing until some CSINode lists the driver."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    manifests = install_chart(control_plane, CHART_SETS)
    controller = ControllerPod(control_plane, manifests, efs.endpoint,
                               cluster_dir / "pods" / module, local_root).start()
    first_node = NodePod(control_plane, manifests, kubelet_factory(
        module.removeprefix("test_").replace("_", "-")[:20] + "-0"),
                         efs.endpoint, local_root)
    try:
        first_node.start()
        yield Driver(control_plane, efs, local_root, controller, manifests)
    finally:
        first_node.stop()
        controller.stop()


# --- objects ---------------------------------------------------------------------------------

def namespace(plane: ControlPlane, name: str) -> str:
    plane.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}])
    return name


def storage_class(name: str, parameters: dict[str, str], **extra: Any) -> Json:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name}, "provisioner": "efs.csi.aws.com",
            "parameters": parameters, "reclaimPolicy": "Delete", **extra}


def claim(name: str, namespace: str, storage_class_name: str, size: str = "5Gi",
          volume_name: str | None = None) -> Json:
    spec: Json = {"accessModes": ["ReadWriteMany"], "storageClassName": storage_class_name,
                  "resources": {"requests": {"storage": size}}}
    if volume_name:
        spec["volumeName"] = volume_name
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def pod(name: str, namespace: str, node: str, claim_name: str) -> Json:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "nodeName": node, "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": "registry.invalid/app:1",
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data",
                             "persistentVolumeClaim": {"claimName": claim_name}}]}}


def phase(plane: ControlPlane, kind: str, name: str, namespace: str | None = None) -> str:
    found = plane.find(kind, name, namespace)
    return str((found or {}).get("status", {}).get("phase", ""))


def wait_bound(plane: ControlPlane, name: str, namespace: str, timeout: float = 60) -> Json:
    wait_until(f"claim {namespace}/{name} Bound",
               lambda: phase(plane, "pvc", name, namespace) == "Bound", timeout, interval=0.1,
               diagnose=lambda: events(plane, namespace))
    return plane.get("pvc", name, namespace)


def wait_gone(plane: ControlPlane, kind: str, name: str, namespace: str | None = None,
              timeout: float = 60) -> None:
    wait_until(f"{kind} {name} deleted", lambda: plane.find(kind, name, namespace) is None,
               timeout, interval=0.1)


def events(plane: ControlPlane, namespace: str) -> str:
    listed = plane.get("events", namespace=namespace)["items"]
    return "\n".join(f"{e['involvedObject']['kind']}/{e['involvedObject']['name']}: "
                     f"{e['reason']}: {e.get('message', '')}" for e in listed)


def handle_parts(pv: Json) -> list[str]:
    return str(pv["spec"]["csi"]["volumeHandle"]).split(":")


def forbidden_since(plane: ControlPlane, mark: int,
                    accounts: Sequence[str] = ("efs-csi-controller-sa", "efs-csi-node-sa"),
                    ) -> list[str]:
    """403 answers the API gave our ServiceAccounts after audit event number ``mark``."""
    users = {f"system:serviceaccount:kube-system:{account}" for account in accounts}
    return [f"{e['user']['username']} {e['verb']} {e.get('objectRef', {}).get('resource')} "
            f"{e.get('objectRef', {}).get('namespace', '')}/"
            f"{e.get('objectRef', {}).get('name', '')}"
            for e in plane.audit_events()[mark:]
            if e["user"]["username"] in users and e.get("responseStatus", {}).get("code") == 403]


def node_taints(plane: ControlPlane, node: str) -> list[Json]:
    return plane.get("node", node).get("spec", {}).get("taints") or []


def timed(action: Callable[[], object]) -> float:
    began = time.monotonic()
    action()
    return time.monotonic() - began


def dumps(document: object) -> str:
    return json.dumps(document, indent=1, sort_keys=True)


@pytest.fixture(scope="module")
def kubelet_factory(control_plane: ControlPlane, cluster_dir: Path
                    ) -> Iterator[Callable[..., Kubelet]]:
    """Start kubelets for this module; all are stopped (and the kernel settings restored)."""
    started: list[Kubelet] = []

    def start(node_name: str, *, zone: str = "us-east-1a",
              taints: Sequence[str] = (f"{NOT_READY_TAINT}:NoExecute",)) -> Kubelet:
        kubelet = Kubelet(control_plane, cluster_dir / "nodes" / node_name, node_name,
                          labels={"topology.kubernetes.io/zone": zone}, taints=taints)
        started.append(kubelet)
        return kubelet.start()

    yield start
    for kubelet in reversed(started):
        kubelet.stop()
        control_plane.kubectl("delete", "node", kubelet.node_name, "--ignore-not-found",
                              "--wait=false")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Module fixtures here start kubelets and pods: allow more than the suite's 60 s."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.timeout(300))
