"""The node's start-up helper process (efs_csi_node.startup_helper, .startup_work), for real: a
child process on the node's interpreter against a fake Kubernetes API on loopback (the faults
and the registration it waits for are set on cue; against a real kube-apiserver and kubelet:
tests/cluster/test_kubelet.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from pathlib import Path

import pytest

from efs_csi.contract import NOT_READY_TAINT, PLUGIN_NAME, TOPOLOGY_ZONE_KEY
from efs_csi.kube import KubeEndpoint
from efs_csi.rpc.supervision import RestartPolicy, supervise
from efs_csi_node.startup_helper import (
    StartupHelper,
    StartupHelperFailed,
    StartupWork,
    optimization_flags,
)
from efs_csi_node.zone import NodeZone
from testbed.kube_api import FakeKubeApi

pytestmark = pytest.mark.slow  # starts processes

NODE = "node-startup"
OURS = {"key": NOT_READY_TAINT, "effect": "NoExecute"}
OTHER = {"key": "dedicated", "value": "storage", "effect": "NoSchedule"}


def work_for(api: FakeKubeApi | str, tmp_path: Path, *,
             remove_taint: bool = True) -> StartupWork:
    token = tmp_path / "token"
    token.write_text((api.token if isinstance(api, FakeKubeApi) else "any") + "\n")
    return StartupWork(node_name=NODE, remove_taint=remove_taint,
                       kube=KubeEndpoint(host=api.url if isinstance(api, FakeKubeApi) else api,
                                         token_file=token), log_level="debug")


def zone_after_imds() -> NodeZone:
    """A zone instance metadata had no answer for: the label decides."""
    zone = NodeZone(label_source=True)
    zone.from_imds(None)
    return zone


def wrapped_python(tmp_path: Path, first: str) -> Path:
    """This interpreter behind a shell script that runs ``first`` before it."""
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\n{first}\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def alive(pid: int) -> bool:
    """Whether the process still exists (a reaped child's /proc entry is gone)."""
    return Path(f"/proc/{pid}").exists()


async def child_pid(helper: StartupHelper) -> int:
    await asyncio.wait_for(helper.started.wait(), 30)
    assert helper.pid is not None
    return helper.pid


@pytest.mark.asyncio
async def test_the_zone_arrives_first_then_the_taint_goes_and_the_child_exits(
        fake_kube_api: FakeKubeApi, tmp_path: Path) -> None:
    fake_kube_api.add_node(NODE, taints=[OURS, OTHER], labels={TOPOLOGY_ZONE_KEY: "zone-l"})
    fake_kube_api.set_csinode(NODE, ["ebs.csi.aws.com"])  # kubelet has not registered us yet
    zone = zone_after_imds()
    helper = StartupHelper(work_for(fake_kube_api, tmp_path), zone)
    task = asyncio.create_task(helper.run())
    try:
        pid = await child_pid(helper)
        async with asyncio.timeout(30):
            assert await zone.wait() == "zone-l"
        # It volunteers to be the one the OOM killer takes under a tight memory limit.
        assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == "1000"
        # NodeGetInfo can answer now; the child still waits for registration.
        assert not task.done() and alive(pid)
        assert fake_kube_api.taints(NODE) == [OURS, OTHER]
        fake_kube_api.set_csinode(NODE, ["ebs.csi.aws.com", PLUGIN_NAME])
        await asyncio.wait_for(task, 30)
    finally:
        task.cancel()
    assert fake_kube_api.taints(NODE) == [OTHER]
    assert not alive(pid)


@pytest.mark.asyncio
async def test_a_cancelled_helper_leaves_no_child_behind(
        fake_kube_api: FakeKubeApi, tmp_path: Path) -> None:
    fake_kube_api.add_node(NODE, taints=[OURS], labels={TOPOLOGY_ZONE_KEY: "zone-l"})
    fake_kube_api.set_csinode(NODE, [])  # never registered: the child would wait forever
    zone = zone_after_imds()
    helper = StartupHelper(work_for(fake_kube_api, tmp_path), zone)
    task = asyncio.create_task(helper.run())
    pid = await child_pid(helper)
    async with asyncio.timeout(30):
        await zone.wait()
    assert alive(pid)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not alive(pid)
    assert fake_kube_api.taints(NODE) == [OURS]


@pytest.mark.asyncio
async def test_a_failed_child_is_restarted_and_asked_only_for_what_is_missing(
        fake_kube_api: FakeKubeApi, tmp_path: Path) -> None:
    """The interpreter is wrapped so that the first child dies at once (a crash the real
    helper cannot be made to have on cue); supervision starts it again."""
    fake_kube_api.add_node(NODE, taints=[OURS], labels={TOPOLOGY_ZONE_KEY: "zone-l"})
    fake_kube_api.set_csinode(NODE, [PLUGIN_NAME])
    crashed = tmp_path / "crashed"
    wrapper = wrapped_python(tmp_path,
                             f'if [ ! -e "{crashed}" ]; then touch "{crashed}"; exit 3; fi')
    zone = zone_after_imds()
    helper = StartupHelper(work_for(fake_kube_api, tmp_path), zone, python=str(wrapper))
    with pytest.raises(StartupHelperFailed, match="status 3"):
        await helper.run()
    assert not zone.settled and zone.cause == "start-up helper exited with status 3"
    assert helper.failures == {"exited": 1}
    await asyncio.wait_for(supervise(helper.run, RestartPolicy(first_delay_s=0.01)), 60)
    assert crashed.exists()
    assert zone.settled and await zone.wait() == "zone-l"
    assert fake_kube_api.taints(NODE) == []
    reads = fake_kube_api.count("GET", f"/api/v1/nodes/{NODE}")
    # Zone known, taint gone: a further run has nothing to do and starts no child.
    await helper.run()
    assert helper.pid is None and fake_kube_api.count("GET", f"/api/v1/nodes/{NODE}") == reads


@pytest.mark.asyncio
async def test_the_child_runs_at_the_nodes_optimization_level(fake_kube_api: FakeKubeApi,
                                                              tmp_path: Path) -> None:
    """The images hold bytecode of the node's level only (-OO, docker/venv.sh): a child at
    another level would compile every module it imports at each start. The interpreter is
    wrapped to record its arguments; the child is the real one, at -OO."""
    fake_kube_api.add_node(NODE, labels={TOPOLOGY_ZONE_KEY: "zone-o"})
    recorded = tmp_path / "arguments"
    wrapper = wrapped_python(tmp_path, f'printf "%s\\n" "$@" > "{recorded}"')
    zone = zone_after_imds()
    helper = StartupHelper(work_for(fake_kube_api, tmp_path, remove_taint=False), zone,
                           python=str(wrapper), optimize=2)
    await asyncio.wait_for(helper.run(), 120)
    assert recorded.read_text().splitlines()[:3] == ["-OO", "-P", "-m"]
    assert zone.settled and await zone.wait() == "zone-o"
    assert optimization_flags(0) == [] and optimization_flags(1) == ["-O"]


@pytest.mark.asyncio
async def test_no_label_and_no_instance_metadata_mean_no_zone(
        fake_kube_api: FakeKubeApi, tmp_path: Path) -> None:
    fake_kube_api.add_node(NODE)
    zone = zone_after_imds()
    await asyncio.wait_for(
        StartupHelper(work_for(fake_kube_api, tmp_path, remove_taint=False), zone).run(), 60)
    assert zone.settled and await zone.wait() is None


@pytest.mark.asyncio
async def test_an_unreachable_api_is_the_zone_cause_while_the_child_keeps_trying(
        tmp_path: Path) -> None:
    """Nothing listens where the API should be: the child says why on each failed read and
    retries with backoff itself (no process restarts); the zone stays unknown, not "none"."""
    zone = zone_after_imds()
    helper = StartupHelper(work_for("http://127.0.0.1:9", tmp_path), zone)
    task = asyncio.create_task(helper.run())
    try:
        pid = await child_pid(helper)
        async with asyncio.timeout(30):
            while helper.failures["kubernetes_api"] < 2:  # noqa: ASYNC110 - no event for it
                await asyncio.sleep(0.05)
        assert not zone.settled and not task.done() and helper.pid == pid
        assert zone.cause.startswith(f"Kubernetes API: cannot read Node {NODE}: ")
        assert "unreachable" in zone.cause
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not alive(pid)


@pytest.mark.asyncio
async def test_a_child_killed_by_a_signal_is_named_as_such(
        fake_kube_api: FakeKubeApi, tmp_path: Path) -> None:
    fake_kube_api.add_node(NODE, taints=[OURS])
    fake_kube_api.set_csinode(NODE, [])  # the child waits: time to kill it
    zone = zone_after_imds()
    helper = StartupHelper(work_for(fake_kube_api, tmp_path), zone)
    task = asyncio.create_task(helper.run())
    pid = await child_pid(helper)
    async with asyncio.timeout(30):
        await zone.wait()  # the label came; now the OOM killer strikes (as it would)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(StartupHelperFailed, match="killed by SIGKILL"):
        await asyncio.wait_for(task, 30)
    assert helper.failures == {"killed": 1}


def test_no_child_when_there_is_nothing_to_do(tmp_path: Path) -> None:
    endpoint = "https://127.0.0.1:1"
    assert StartupHelper(work_for(endpoint, tmp_path, remove_taint=False),
                         NodeZone(label_source=True)).pending()  # the label may know the zone
    assert not StartupHelper(work_for(endpoint, tmp_path, remove_taint=False),
                             NodeZone.known("zone-f")).pending()
    assert StartupHelper(work_for(endpoint, tmp_path, remove_taint=True),
                         NodeZone.known("zone-f")).pending()  # the taint
