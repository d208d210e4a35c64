"""The kubernetes-asyncio adapter and the startup taint removal against a real kube-apiserver.

Faults a real server cannot be made to answer on cue (500/503/409 on a given request) are
tested against tests/support/fakes/kube_api.py in tests/core/adapters/test_kube.py and
tests/node/test_taint.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from efs_csi.adapters.kube import KubernetesAsyncioKube
from efs_csi.contract import NOT_READY_TAINT, PLUGIN_NAME
from efs_csi.errors import NotFound, PermissionDenied, Unavailable
from efs_csi.kube import KubeEndpoint, NodeInfo, Taint, in_cluster_endpoint
from efs_csi_node.taint import TaintRemovalSettings, TaintRemover
from tests.support.cluster import ControlPlane, wait_until

OURS_NO_EXECUTE = {"key": NOT_READY_TAINT, "effect": "NoExecute"}
OURS_NO_SCHEDULE = {"key": NOT_READY_TAINT, "effect": "NoSchedule", "value": "true"}
OTHER = {"key": "dedicated", "value": "storage", "effect": "NoSchedule"}
FAST = TaintRemovalSettings(backoff_base_s=0.01, backoff_max_s=0.05,
                            registration_poll_s=0.05)
pytestmark = pytest.mark.asyncio


def admin_endpoint(plane: ControlPlane) -> KubeEndpoint:
    token = plane.workdir / "pki" / "admin.token"
    return KubeEndpoint(host=plane.server, token_file=token, ca_file=plane.pki.ca)


@pytest_asyncio.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[KubernetesAsyncioKube]:
    adapter = KubernetesAsyncioKube(admin_endpoint(control_plane))
    try:
        yield adapter
    finally:
        await adapter.close()


def node(plane: ControlPlane, name: str, taints: list[dict[str, str]],
         labels: dict[str, str] | None = None) -> str:
    """A Node object (no kubelet behind it: only its taints and labels matter here)."""
    plane.kubectl("delete", "node", name, "--ignore-not-found")
    plane.apply([{"apiVersion": "v1", "kind": "Node",
                  "metadata": {"name": name, "labels": labels or {}},
                  "spec": {"taints": taints}}])
    return name


def csinode(plane: ControlPlane, name: str, drivers: list[str]) -> None:
    plane.apply([{"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                  "metadata": {"name": name},
                  "spec": {"drivers": [{"name": d, "nodeID": name} for d in drivers]}}])


SERVER_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}


def taints(plane: ControlPlane, name: str) -> list[dict[str, Any]]:
    """The Node's taints but the one the API server itself puts on every new Node
    (TaintNodesByCondition), which removal must keep like any other."""
    found = plane.get("node", name)["spec"].get("taints") or []
    assert SERVER_TAINT in found, f"the API server's own taint is gone: {found}"
    return [taint for taint in found if taint != SERVER_TAINT]


def remover(kube: KubernetesAsyncioKube, name: str) -> TaintRemover:
    return TaintRemover(kube, name, FAST, rng=random.Random(7))


def adapter_requests(plane: ControlPlane, mark: int, name: str) -> list[dict[str, Any]]:
    """Requests on objects called ``name`` since audit event ``mark``, made by the adapter
    (the test's own kubectl calls, also as admin, are told apart by their user agent)."""
    return [e for e in plane.audit_events()[mark:]
            if e.get("objectRef", {}).get("name") == name
            and not e.get("userAgent", "").startswith("kubectl")]


def requests_by(plane: ControlPlane, mark: int, verb: str, resource: str,
                name: str) -> list[dict[str, Any]]:
    return [e for e in adapter_requests(plane, mark, name)
            if e["verb"] == verb and e.get("objectRef", {}).get("resource") == resource]


async def test_reads_config_maps_secrets_and_nodes(control_plane: ControlPlane,
                                                   kube: KubernetesAsyncioKube) -> None:
    plane = control_plane
    plane.apply([
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "efs", "namespace": "default"},
         "data": {"fileSystemId": "fs-01234567"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "efs", "namespace": "default"},
         "stringData": {"roleArn": "arn:aws:iam::1:role/x"}},
    ])
    name = node(plane, "adapter-reads", [OTHER], {"topology.kubernetes.io/zone": "us-east-1a"})
    assert await kube.read_config_map_key("default", "efs", "fileSystemId") == "fs-01234567"
    assert await kube.read_secret_key("default", "efs", "roleArn") == "arn:aws:iam::1:role/x"
    info = await kube.get_node(name)
    assert info.labels["topology.kubernetes.io/zone"] == "us-east-1a"
    assert [(t.key, t.effect, t.value) for t in info.taints] == [
        ("dedicated", "NoSchedule", "storage"), (SERVER_TAINT["key"], "NoSchedule", None)]
    with pytest.raises(NotFound):
        await kube.read_config_map_key("default", "efs", "missing")
    with pytest.raises(NotFound):
        await kube.read_secret_key("default", "nope", "roleArn")
    with pytest.raises(NotFound):
        await kube.get_node("no-such-node")


async def test_a_fresh_csinode_with_null_drivers_reads_as_not_registered(
        control_plane: ControlPlane, kube: KubernetesAsyncioKube) -> None:
    plane = control_plane
    csinode(plane, "adapter-fresh", [])
    assert plane.raw("/apis/storage.k8s.io/v1/csinodes/adapter-fresh")["spec"]["drivers"] is None
    assert await kube.csinode_has_driver("adapter-fresh", PLUGIN_NAME) is False
    assert await kube.csinode_has_driver("adapter-no-csinode", PLUGIN_NAME) is None
    csinode(plane, "adapter-fresh", [PLUGIN_NAME])
    assert await kube.csinode_has_driver("adapter-fresh", PLUGIN_NAME) is True


async def test_a_service_account_without_rights_is_refused_and_a_dead_server_unreachable(
        control_plane: ControlPlane, tmp_path: Path) -> None:
    plane = control_plane
    plane.apply([{"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": {"name": "nobody", "namespace": "default"}}])
    token = tmp_path / "token"
    token.write_text(plane.create_token("default", "nobody"))
    refused = KubernetesAsyncioKube(KubeEndpoint(plane.server, token, plane.pki.ca))
    gone = KubernetesAsyncioKube(KubeEndpoint("https://127.0.0.1:9", token, plane.pki.ca),
                                 timeout_s=2)
    try:
        with pytest.raises(PermissionDenied, match="ConfigMap default/efs: 403 Forbidden"):
            await refused.read_config_map_key("default", "efs", "fileSystemId")
        with pytest.raises(Unavailable, match="unreachable"):
            await gone.get_node("anything")
    finally:
        await refused.close()
        await gone.close()


async def test_in_cluster_endpoint_with_the_ca_and_a_rotated_token(
        control_plane: ControlPlane, tmp_path: Path) -> None:
    """Projected tokens rotate: when the file changes, the next call sends the new token."""
    plane = control_plane
    for account in ("first", "second"):
        plane.apply([{"apiVersion": "v1", "kind": "ServiceAccount",
                      "metadata": {"name": account, "namespace": "default"}}])
    plane.kubectl("create", "clusterrolebinding", "adapter-rotation", "--clusterrole=view",
                  "--serviceaccount=default:first", "--serviceaccount=default:second")
    name = node(plane, "adapter-rotation", [])
    plane.kubectl("create", "clusterrole", "adapter-nodes", "--verb=get", "--resource=nodes")
    plane.kubectl("create", "clusterrolebinding", "adapter-nodes", "--clusterrole=adapter-nodes",
                  "--serviceaccount=default:first", "--serviceaccount=default:second")
    account_dir = tmp_path / "serviceaccount"
    account_dir.mkdir()
    (account_dir / "ca.crt").write_bytes(plane.pki.ca.read_bytes())
    (account_dir / "token").write_text(plane.create_token("default", "first"))
    mark = len(plane.audit_events())
    kube = KubernetesAsyncioKube(in_cluster_endpoint(plane.in_cluster_environment(),
                                                     account_dir))
    try:
        assert (await kube.get_node(name)).name == name
        (account_dir / "token").write_text(plane.create_token("default", "second") + "\n")
        assert (await kube.get_node(name)).name == name
    finally:
        await kube.close()
        plane.kubectl("delete", "clusterrolebinding", "adapter-rotation", "adapter-nodes")
        plane.kubectl("delete", "clusterrole", "adapter-nodes")
    users = [e["user"]["username"] for e in requests_by(plane, mark, "get", "nodes", name)]
    assert users == ["system:serviceaccount:default:first",
                     "system:serviceaccount:default:second"]


async def test_no_taint_of_ours_means_no_patch(control_plane: ControlPlane,
                                               kube: KubernetesAsyncioKube) -> None:
    name = node(control_plane, "taint-none", [OTHER])
    mark = len(control_plane.audit_events())
    assert await remover(kube, name).remove_taint() is False
    assert requests_by(control_plane, mark, "patch", "nodes", name) == []
    assert taints(control_plane, name) == [OTHER]


async def test_removes_our_taints_of_any_effect_keeps_the_others_and_verifies(
        control_plane: ControlPlane, kube: KubernetesAsyncioKube) -> None:
    plane = control_plane
    name = node(plane, "taint-mixed", [OURS_NO_EXECUTE, OTHER, OURS_NO_SCHEDULE])
    mark = len(plane.audit_events())
    assert await remover(kube, name).remove_taint() is True
    assert taints(plane, name) == [OTHER]
    requests = [e["verb"] for e in adapter_requests(plane, mark, name)]
    assert requests == ["get", "patch", "get"]  # read, patch, read again to verify


class EditedBeforePatch:
    """The real adapter, with someone else editing the Node between our read and our patch
    (a race a real server cannot be asked to produce on cue, so the test makes it)."""

    def __init__(self, kube: KubernetesAsyncioKube, plane: ControlPlane) -> None:
        self._kube = kube
        self._plane = plane
        self.edited = False

    async def get_node(self, name: str) -> NodeInfo:
        return await self._kube.get_node(name)

    async def replace_node_taints(self, node: NodeInfo, taints: tuple[Taint, ...]) -> None:
        if not self.edited:
            self.edited = True
            self._plane.kubectl("taint", "node", node.name, "someone-else:PreferNoSchedule")
        await self._kube.replace_node_taints(node, taints)

    async def csinode_has_driver(self, node_name: str, driver: str) -> bool | None:
        return await self._kube.csinode_has_driver(node_name, driver)


async def test_a_concurrent_edit_is_refused_by_the_api_and_retried_without_losing_it(
        control_plane: ControlPlane, kube: KubernetesAsyncioKube) -> None:
    plane = control_plane
    name = node(plane, "taint-race", [OURS_NO_EXECUTE])
    mark = len(plane.audit_events())
    racing = EditedBeforePatch(kube, plane)
    assert await TaintRemover(racing, name, FAST).remove_taint() is True  # type: ignore[arg-type]
    assert taints(plane, name) == [{"key": "someone-else", "effect": "PreferNoSchedule"}]
    patches = [e["responseStatus"]["code"]
               for e in requests_by(plane, mark, "patch", "nodes", name)]
    assert patches == [422, 200]


async def test_waits_for_registration_then_removes_the_taint_once(
        control_plane: ControlPlane, kube: KubernetesAsyncioKube) -> None:
    plane = control_plane
    name = node(plane, "taint-lifecycle", [OURS_NO_EXECUTE, OTHER])
    csinode(plane, name, ["ebs.csi.aws.com"])
    mark = len(plane.audit_events())
    task = asyncio.create_task(remover(kube, name).run())
    try:
        await asyncio.to_thread(wait_until, "CSINode polled",
                                lambda: len(requests_by(plane, mark, "get", "csinodes", name)) >= 3,
                                10)
        assert taints(plane, name) == [OURS_NO_EXECUTE, OTHER]  # not registered yet
        assert not task.done()
        csinode(plane, name, ["ebs.csi.aws.com", PLUGIN_NAME])
        # Removed, verified by a fresh read, and done: the start-up helper then exits.
        await asyncio.wait_for(task, 10)
        assert taints(plane, name) == [OTHER]
    finally:
        task.cancel()
