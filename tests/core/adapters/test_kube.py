"""The Kubernetes adapter under faults a real API server cannot be made to answer on cue
(tests/support/fakes/kube_api.py), and where the in-cluster API is; everything else about the
adapter is tested against a real kube-apiserver in tests/cluster/test_kube_adapter.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from efs_csi.adapters.kube import KubernetesAsyncioKube
from efs_csi.contract import NOT_READY_TAINT, PLUGIN_NAME
from efs_csi.errors import Unavailable
from efs_csi.kube import KubeEndpoint, in_cluster_endpoint
from testbed.kube_api import FakeKubeApi

NODE = "ip-10-0-0-1.ec2.internal"
OURS = {"key": NOT_READY_TAINT, "effect": "NoExecute"}
OTHER = {"key": "dedicated", "value": "storage", "effect": "NoSchedule"}
NODE_PATH = f"/api/v1/nodes/{NODE}"
CSINODE_PATH = f"/apis/storage.k8s.io/v1/csinodes/{NODE}"


def test_in_cluster_endpoint_reads_the_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_text("pem")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    endpoint = in_cluster_endpoint(env, tmp_path)
    assert endpoint == KubeEndpoint("https://[fd00::1]:443", tmp_path / "token",
                                    tmp_path / "ca.crt")
    with pytest.raises(Unavailable):
        in_cluster_endpoint({}, tmp_path)


@pytest.mark.asyncio
async def test_server_errors_are_unavailable(fake_kube_api: FakeKubeApi,
                                             kube_over_fake_api: KubernetesAsyncioKube) -> None:
    fake_kube_api.add_node(NODE)
    fake_kube_api.faults[("GET", NODE_PATH)] = [503]
    with pytest.raises(Unavailable, match="503"):
        await kube_over_fake_api.get_node(NODE)


@pytest.mark.parametrize("body", [
    b"not json",
    b"[1, 2]",
    b'{"metadata": {"name": "x"}, "spec": {}}',  # no resourceVersion
    b'{"metadata": {"name": "x", "resourceVersion": "1"}, "spec": {"taints": "NoSchedule"}}',
    b'{"metadata": {"name": "x", "resourceVersion": "1"}, "spec": {"taints": [{"key": "k"}]}}',
])
@pytest.mark.asyncio
async def test_a_malformed_node_is_unavailable_not_a_crash(
        fake_kube_api: FakeKubeApi, kube_over_fake_api: KubernetesAsyncioKube, body: bytes) -> None:
    fake_kube_api.faults[("GET", NODE_PATH)] = [body]
    with pytest.raises(Unavailable):
        await kube_over_fake_api.get_node(NODE)


@pytest.mark.asyncio
async def test_a_malformed_csinode_is_unavailable_and_null_drivers_are_none_yet(
        fake_kube_api: FakeKubeApi, kube_over_fake_api: KubernetesAsyncioKube) -> None:
    fake_kube_api.faults[("GET", CSINODE_PATH)] = [b'{"spec": {"drivers": {"name": "x"}}}']
    with pytest.raises(Unavailable):
        await kube_over_fake_api.csinode_has_driver(NODE, PLUGIN_NAME)
    fake_kube_api.set_csinode(NODE, [])
    assert await kube_over_fake_api.csinode_has_driver(NODE, PLUGIN_NAME) is False
