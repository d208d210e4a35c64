"""The Kubernetes objects the flow creates, as plain dicts (pure)."""

from __future__ import annotations

from typing import Any

from efs_csi.contract import PLUGIN_NAME
from testbed.kind.apps import READER_SCRIPT, WRITER_SCRIPT

Manifest = dict[str, Any]
NAMESPACE = "efs-csi-e2e"
APP_IMAGE = "busybox:1.37"
# Apps may run on a kind control-plane node too: two nodes, two sides of every volume.
CONTROL_PLANE_TOLERATION = {"key": "node-role.kubernetes.io/control-plane",
                            "operator": "Exists", "effect": "NoSchedule"}


def namespace(name: str = NAMESPACE) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def storage_class(name: str, parameters: dict[str, str], *,
                  binding: str = "Immediate") -> Manifest:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name}, "provisioner": PLUGIN_NAME,
            "parameters": parameters, "reclaimPolicy": "Delete",
            "volumeBindingMode": binding}


def claim(name: str, storage_class_name: str, *, volume_name: str | None = None,
          namespace: str = NAMESPACE) -> Manifest:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteMany"],
                            "storageClassName": storage_class_name,
                            "resources": {"requests": {"storage": "5Gi"}}}
    if volume_name is not None:
        spec["volumeName"] = volume_name
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def static_volume(name: str, handle: str, claim_name: str,
                  namespace: str = NAMESPACE) -> Manifest:
    """A PV made by hand for an existing access point, bound ahead to one claim."""
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteMany"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                     "claimRef": {"namespace": namespace, "name": claim_name},
                     "csi": {"driver": PLUGIN_NAME, "volumeHandle": handle}}}


def _pod(name: str, claim_name: str, script: str, env: dict[str, str], *,
         node: str | None, read_only: bool, namespace: str) -> Manifest:
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 1,
        "tolerations": [CONTROL_PLANE_TOLERATION],
        "containers": [{
            "name": "app", "image": APP_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script],
            "env": [{"name": key, "value": value} for key, value in env.items()],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name,
                                                               "readOnly": read_only}}],
    }
    if node is not None:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "efs-e2e"}},
            "spec": spec}


def writer(name: str, claim_name: str, node: str | None,
           namespace: str = NAMESPACE) -> Manifest:
    return _pod(name, claim_name, WRITER_SCRIPT, {"APP_NAME": name}, node=node,
                read_only=False, namespace=namespace)


def reader(name: str, claim_name: str, writer_name: str, node: str | None,
           namespace: str = NAMESPACE) -> Manifest:
    """A pod that mounts the claim read-only (kubelet publishes it read-only)."""
    return _pod(name, claim_name, READER_SCRIPT, {"WRITER": writer_name}, node=node,
                read_only=True, namespace=namespace)
