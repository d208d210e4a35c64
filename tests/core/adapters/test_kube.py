"""The Kubernetes adapter and the taint removal under faults a real API server cannot be made
to answer on cue (tests/support/fake_kube_api.py); everything else about them is tested
against a real kube-apiserver in tests/cluster/test_kube_adapter.py."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from efs_csi.adapters.kube import KubernetesAsyncioKube
from efs_csi.contract import NOT_READY_TAINT, PLUGIN_NAME
from efs_csi.errors import Unavailable
from efs_csi.kube import KubeEndpoint, in_cluster_endpoint
from efs_csi_node.taint import TaintRemovalSettings, TaintRemover, taint_removal_enabled
from tests.support.fake_kube_api import FakeKubeApi

NODE = "ip-10-0-0-1.ec2.internal"
OURS = {"key": NOT_READY_TAINT, "effect": "NoExecute"}
OTHER = {"key": "dedicated", "value": "storage", "effect": "NoSchedule"}
NODE_PATH = f"/api/v1/nodes/{NODE}"
CSINODE_PATH = f"/apis/storage.k8s.io/v1/csinodes/{NODE}"
FAST = TaintRemovalSettings(recheck_interval_s=0.02, backoff_base_s=0.001, backoff_max_s=0.01,
                            registration_poll_s=0.01)


@pytest_asyncio.fixture
async def api() -> AsyncIterator[FakeKubeApi]:
    fake = FakeKubeApi()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest_asyncio.fixture
async def kube(api: FakeKubeApi, tmp_path: Path) -> AsyncIterator[KubernetesAsyncioKube]:
    token = tmp_path / "token"
    token.write_text(api.token + "\n")
    adapter = KubernetesAsyncioKube(KubeEndpoint(host=api.url, token_file=token))
    try:
        yield adapter
    finally:
        await adapter.close()


def remover(kube: KubernetesAsyncioKube) -> TaintRemover:
    serving = asyncio.Event()
    serving.set()
    return TaintRemover(kube, NODE, serving, FAST, rng=random.Random(7))


def test_in_cluster_endpoint_reads_the_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_text("pem")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    endpoint = in_cluster_endpoint(env, tmp_path)
    assert endpoint == KubeEndpoint("https://[fd00::1]:443", tmp_path / "token",
                                    tmp_path / "ca.crt")
    with pytest.raises(Unavailable):
        in_cluster_endpoint({}, tmp_path)


def test_disabled_by_flag_or_environment() -> None:
    assert taint_removal_enabled(True, {})
    assert not taint_removal_enabled(False, {})
    assert not taint_removal_enabled(True, {"DISABLE_TAINT_WATCHER": "true"})


@pytest.mark.asyncio
async def test_server_errors_are_unavailable(api: FakeKubeApi,
                                             kube: KubernetesAsyncioKube) -> None:
    api.add_node(NODE)
    api.faults[("GET", NODE_PATH)] = [503]
    with pytest.raises(Unavailable, match="503"):
        await kube.get_node(NODE)


@pytest.mark.parametrize("body", [
    b"not json",
    b"[1, 2]",
    b'{"metadata": {"name": "x"}, "spec": {}}',  # no resourceVersion
    b'{"metadata": {"name": "x", "resourceVersion": "1"}, "spec": {"taints": "NoSchedule"}}',
    b'{"metadata": {"name": "x", "resourceVersion": "1"}, "spec": {"taints": [{"key": "k"}]}}',
])
@pytest.mark.asyncio
async def test_a_malformed_node_is_unavailable_not_a_crash(
        api: FakeKubeApi, kube: KubernetesAsyncioKube, body: bytes) -> None:
    api.faults[("GET", NODE_PATH)] = [body]
    with pytest.raises(Unavailable):
        await kube.get_node(NODE)


@pytest.mark.asyncio
async def test_a_malformed_csinode_is_unavailable_and_null_drivers_are_none_yet(
        api: FakeKubeApi, kube: KubernetesAsyncioKube) -> None:
    api.faults[("GET", CSINODE_PATH)] = [b'{"spec": {"drivers": {"name": "x"}}}']
    with pytest.raises(Unavailable):
        await kube.csinode_has_driver(NODE, PLUGIN_NAME)
    api.set_csinode(NODE, [])
    assert await kube.csinode_has_driver(NODE, PLUGIN_NAME) is False


@pytest.mark.asyncio
async def test_api_errors_are_retried_until_the_taint_is_removed(
        api: FakeKubeApi, kube: KubernetesAsyncioKube) -> None:
    api.add_node(NODE, taints=[OURS, OTHER])
    api.faults[("GET", NODE_PATH)] = [500, 503, b"{}"]
    api.faults[("PATCH", NODE_PATH)] = [409, 500]
    assert await remover(kube).remove_taint() is True
    assert api.taints(NODE) == [OTHER]
    assert api.count("PATCH", NODE_PATH) == 3
