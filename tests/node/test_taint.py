"""Taint removal: when it is enabled, and its retries through API faults a real API server
cannot be made to answer on cue (tests/support/fakes/kube_api.py). Against a real
kube-apiserver: tests/cluster/test_kube_adapter.py."""

from __future__ import annotations

import random

import pytest

from efs_csi.adapters.kube import KubernetesAsyncioKube
from efs_csi.contract import NOT_READY_TAINT
from efs_csi_node.taint import TaintRemovalSettings, TaintRemover, taint_removal_enabled
from testbed.kube_api import FakeKubeApi

NODE = "ip-10-0-0-1.ec2.internal"
OURS = {"key": NOT_READY_TAINT, "effect": "NoExecute"}
OTHER = {"key": "dedicated", "value": "storage", "effect": "NoSchedule"}
NODE_PATH = f"/api/v1/nodes/{NODE}"
FAST = TaintRemovalSettings(backoff_base_s=0.001, backoff_max_s=0.01,
                            registration_poll_s=0.01)


def remover(kube: KubernetesAsyncioKube) -> TaintRemover:
    return TaintRemover(kube, NODE, FAST, rng=random.Random(7))


def test_disabled_by_flag_or_environment() -> None:
    assert taint_removal_enabled(True, {})
    assert not taint_removal_enabled(False, {})
    assert not taint_removal_enabled(True, {"DISABLE_TAINT_WATCHER": "true"})


@pytest.mark.asyncio
async def test_api_errors_are_retried_until_the_taint_is_removed(
        fake_kube_api: FakeKubeApi, kube_over_fake_api: KubernetesAsyncioKube) -> None:
    fake_kube_api.add_node(NODE, taints=[OURS, OTHER])
    fake_kube_api.faults[("GET", NODE_PATH)] = [500, 503, b"{}"]
    fake_kube_api.faults[("PATCH", NODE_PATH)] = [409, 500]
    assert await remover(kube_over_fake_api).remove_taint() is True
    assert fake_kube_api.taints(NODE) == [OTHER]
    assert fake_kube_api.count("PATCH", NODE_PATH) == 3
