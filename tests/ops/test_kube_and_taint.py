"""The kubernetes-asyncio adapter and the startup taint removal, over real HTTP against the
fake API server of tests.support.fake_kube_api."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from efs_csi import NOT_READY_TAINT, PLUGIN_NAME
from efs_csi.errors import NotFound, Unavailable
from efs_csi.kube import KubeEndpoint, KubernetesAsyncioKube, in_cluster_endpoint
from node.taint import TaintRemovalSettings, TaintRemover, taint_removal_enabled
from tests.support.fake_kube_api import FakeKubeApi, self_signed_tls

NODE = "ip-10-0-0-1.ec2.internal"
OURS_NO_EXECUTE = {"key": NOT_READY_TAINT, "effect": "NoExecute"}
OURS_NO_SCHEDULE = {"key": NOT_READY_TAINT, "effect": "NoSchedule", "value": "true"}
OTHER = {"key": "dedicated", "value": "storage", "effect": "NoSchedule"}
NODE_PATH = f"/api/v1/nodes/{NODE}"
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


def remover(kube: KubernetesAsyncioKube, serving: asyncio.Event | None = None) -> TaintRemover:
    ready = serving or asyncio.Event()
    if serving is None:
        ready.set()
    return TaintRemover(kube, NODE, ready, FAST, rng=random.Random(7))


@pytest.mark.asyncio
async def test_reads_config_maps_secrets_nodes_with_the_bearer_token(
    api: FakeKubeApi, kube: KubernetesAsyncioKube
) -> None:
    api.config_maps[("kube-system", "efs")] = {"fileSystemId": "fs-01234567"}
    api.secrets[("kube-system", "efs")] = {"roleArn": "arn:aws:iam::1:role/x"}
    api.add_node(NODE, labels={"topology.kubernetes.io/zone": "us-east-1a"},
                 taints=[OTHER])
    assert await kube.read_config_map_key("kube-system", "efs", "fileSystemId") == "fs-01234567"
    assert await kube.read_secret_key("kube-system", "efs", "roleArn") == "arn:aws:iam::1:role/x"
    node = await kube.get_node(NODE)
    assert node.labels["topology.kubernetes.io/zone"] == "us-east-1a"
    assert [(t.key, t.effect, t.value) for t in node.taints] == [("dedicated", "NoSchedule",
                                                                  "storage")]
    with pytest.raises(NotFound):
        await kube.read_config_map_key("kube-system", "efs", "missing")
    with pytest.raises(NotFound):
        await kube.read_secret_key("kube-system", "nope", "roleArn")
    assert {seen.authorization for seen in api.requests} == {f"Bearer {api.token}"}


@pytest.mark.asyncio
async def test_api_errors_and_unreachable_server_are_unavailable(
    api: FakeKubeApi, kube: KubernetesAsyncioKube, tmp_path: Path
) -> None:
    api.add_node(NODE)
    api.faults[("GET", NODE_PATH)] = [503]
    with pytest.raises(Unavailable):
        await kube.get_node(NODE)
    gone = KubernetesAsyncioKube(KubeEndpoint(host="http://127.0.0.1:9"), timeout_s=2)
    try:
        with pytest.raises(Unavailable):
            await gone.get_node(NODE)
    finally:
        await gone.close()


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
async def test_in_cluster_https_with_the_service_account_ca_and_a_rotated_token(
    tmp_path: Path
) -> None:
    service_account = tmp_path / "serviceaccount"
    service_account.mkdir()
    tls, ca_file = self_signed_tls(service_account)
    (service_account / "token").write_text("first-token")
    fake = FakeKubeApi(token="first-token")
    fake.add_node(NODE)
    url = await fake.start(tls)
    port = url.rsplit(":", 1)[1]
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
    kube = KubernetesAsyncioKube(in_cluster_endpoint(env, service_account))
    try:
        assert ca_file.exists()
        assert (await kube.get_node(NODE)).name == NODE
        # Projected tokens rotate: the file changes and the next call sends the new one.
        fake.token = "second-token"
        (service_account / "token").write_text("second-token\n")
        assert (await kube.get_node(NODE)).name == NODE
    finally:
        await kube.close()
        await fake.stop()
    assert [seen.authorization for seen in fake.requests] == ["Bearer first-token",
                                                              "Bearer second-token"]


def test_disabled_by_flag_or_environment() -> None:
    assert taint_removal_enabled(True, {})
    assert not taint_removal_enabled(False, {})
    assert not taint_removal_enabled(True, {"DISABLE_TAINT_WATCHER": "true"})


@pytest.mark.asyncio
async def test_no_taint_means_no_patch(api: FakeKubeApi, kube: KubernetesAsyncioKube) -> None:
    api.add_node(NODE, taints=[OTHER])
    assert await remover(kube).remove_taint() is False
    assert api.count("PATCH", NODE_PATH) == 0
    assert api.taints(NODE) == [OTHER]


@pytest.mark.asyncio
async def test_removes_our_taints_of_any_effect_and_keeps_the_others(
    api: FakeKubeApi, kube: KubernetesAsyncioKube
) -> None:
    api.add_node(NODE, taints=[OURS_NO_EXECUTE, OTHER, OURS_NO_SCHEDULE])
    version = api.nodes[NODE]["metadata"]["resourceVersion"]
    assert await remover(kube).remove_taint() is True
    assert api.taints(NODE) == [OTHER]
    patch = next(seen for seen in api.requests if seen.method == "PATCH")
    assert patch.content_type == "application/json-patch+json"
    assert patch.body[0] == {"op": "test", "path": "/metadata/resourceVersion",
                             "value": version}
    # Verified afterwards: the Node was read again after the patch.
    assert api.requests[-1].method == "GET" and api.requests[-1].path == NODE_PATH


@pytest.mark.asyncio
async def test_concurrent_edit_conflicts_and_is_retried_without_losing_it(
    api: FakeKubeApi, kube: KubernetesAsyncioKube
) -> None:
    api.add_node(NODE, taints=[OURS_NO_EXECUTE])
    concurrent = {"key": "someone-else", "effect": "PreferNoSchedule"}

    def edit_once(name: str) -> None:
        api.before_patch = None
        api.set_taints(name, [*api.taints(name), concurrent])

    api.before_patch = edit_once
    assert await remover(kube).remove_taint() is True
    assert api.taints(NODE) == [concurrent]
    assert api.count("PATCH", NODE_PATH) == 2  # the first was refused by the test op


@pytest.mark.asyncio
async def test_api_errors_are_retried_until_removed(
    api: FakeKubeApi, kube: KubernetesAsyncioKube
) -> None:
    api.add_node(NODE, taints=[OURS_NO_EXECUTE, OTHER])
    api.faults[("GET", NODE_PATH)] = [500, 503]
    api.faults[("PATCH", NODE_PATH)] = [409, 500]
    assert await remover(kube).remove_taint() is True
    assert api.taints(NODE) == [OTHER]
    assert api.count("PATCH", NODE_PATH) == 3


@pytest.mark.asyncio
async def test_waits_for_serving_and_registration_then_removes_and_rechecks(
    api: FakeKubeApi, kube: KubernetesAsyncioKube
) -> None:
    api.add_node(NODE, taints=[OURS_NO_EXECUTE, OTHER])
    api.set_csinode(NODE, ["ebs.csi.aws.com"])
    serving = asyncio.Event()
    task = asyncio.create_task(remover(kube, serving).run())
    csinode_path = f"/apis/storage.k8s.io/v1/csinodes/{NODE}"
    try:
        await asyncio.sleep(0.05)
        assert api.requests == []  # not serving yet: nothing asked
        serving.set()
        await api.wait_until(lambda: api.count("GET", csinode_path) >= 3)
        assert api.count("PATCH", NODE_PATH) == 0  # not registered yet
        api.set_csinode(NODE, ["ebs.csi.aws.com", PLUGIN_NAME])
        await api.wait_until(lambda: api.taints(NODE) == [OTHER])
        # The taint comes back: the periodic re-check removes it again.
        api.set_taints(NODE, [OTHER, OURS_NO_SCHEDULE])
        await api.wait_until(lambda: api.count("PATCH", NODE_PATH) == 2
                             and api.taints(NODE) == [OTHER])
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.asyncio
async def test_no_csinode_in_the_api_does_not_block_removal(
    api: FakeKubeApi, kube: KubernetesAsyncioKube
) -> None:
    api.add_node(NODE, taints=[OURS_NO_EXECUTE])
    assert await kube.csinode_has_driver(NODE, PLUGIN_NAME) is None
    await remover(kube).wait_registered()
    api.set_csinode(NODE, [PLUGIN_NAME])
    assert await kube.csinode_has_driver(NODE, PLUGIN_NAME) is True
