"""The node always registers and mounts, whatever becomes of its start-up helper.

The real node binary, seeing the world as its pod does (the service account at the in-cluster
path, the API at an https:// address: testbed/in_cluster.py, root), against a fake Kubernetes
API on loopback (testbed/kube_api.py: the helper's failures are what is under test, not the
API), with a helper that fails on every start in each way it can:

- it crashes (a ``sitecustomize`` on the helper's path aborts it: a fault the real helper cannot
  be made to have on cue);
- the kernel's OOM killer takes it, under a real memory limit (a cgroup sized for the node
  alone, as a limit sized for the steady node would be);
- the Kubernetes API is unreachable (nothing listens at its address).

In each, NodeGetInfo answers without topology once the registration bound has passed, saying
why (the log, /healthz, the metrics), the zone is still sought in the background, and a plain
``fs-…:/path`` volume, which needs no zone, stages at once. Instance metadata, which the node
asks itself, gives the zone whatever the helper does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from efs_csi import csi
from efs_csi.contract import NOT_READY_TAINT, PLUGIN_NAME, TOPOLOGY_ZONE_KEY
from testbed.cgroups import CgroupUnavailable, MemoryCgroup, memory_cgroup
from testbed.csi_builders import stage_request
from testbed.imds import running_imds
from testbed.in_cluster import in_cluster_environment, pod_command, service_account_files
from testbed.kube_api import FakeKubeApi, TlsFiles
from testbed.processes import RunningBinary, start_binary
from tests.support.ci import require_root, skip_or_fail
from tests.support.scrape import healthz, scrape, value

pytestmark = [pytest.mark.slow, pytest.mark.asyncio]

NODE = "node-registration"
FS_ID = "fs-0123456789abcdef0"
OURS = {"key": NOT_READY_TAINT, "effect": "NoExecute"}
# Code a ``sitecustomize`` runs in the helper only (the node itself is left alone).
IN_THE_HELPER = 'import os, sys, time\nif "efs_csi_node.startup_work" in sys.orig_argv:\n'
# A helper that aborts as soon as its interpreter starts.
CRASHING_HELPER = IN_THE_HELPER + '    os.abort()\n'
# A helper that waits, a bare interpreter, until it takes the one pass at ``{gate}``.
GATED_HELPER = IN_THE_HELPER + """\
    while True:
        try:
            os.unlink({gate!r})
            break
        except FileNotFoundError:
            time.sleep(0.02)
"""
# What a limit "sized for the node" leaves above the node's own peak: room for the node's
# calls, well short of the helper's interpreter and Kubernetes client (about 35 MiB here).
HEADROOM_BYTES = 22 << 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    """The fake API (over TLS) and the service-account files the node's pod would have."""

    api: FakeKubeApi
    service_account: Path
    environment: dict[str, str]

    def unreachable(self) -> dict[str, str]:
        """The in-cluster address of an API nobody answers at."""
        return in_cluster_environment(free_port())


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    require_root()
    if shutil.which("unshare") is None or shutil.which("findmnt") is None:
        skip_or_fail("util-linux's unshare and findmnt are needed")
    tls = TlsFiles.create(tmp_path / "tls")
    api = FakeKubeApi()
    api.add_node(NODE, taints=[OURS], labels={TOPOLOGY_ZONE_KEY: "zone-label"})
    api.set_csinode(NODE, [PLUGIN_NAME])
    await api.start(tls)
    try:
        yield Cluster(api, service_account_files(tmp_path / "sa", api.token, tls.certificate),
                      in_cluster_environment(api.port))
    finally:
        await api.stop()


@dataclass
class Node:
    running: RunningBinary
    metrics_port: int
    root: Path  # the local backend's: one directory per file system
    work: Path

    @property
    def pid(self) -> int:
        return self.running.process.pid

    async def info(self) -> csi.NodeGetInfoResponse:
        channel = self.running.channel()
        try:
            return await csi.NodeStub(channel).node_get_info(csi.NodeGetInfoRequest(),
                                                             timeout=60)
        finally:
            channel.close()

    async def stage_plain_volume(self) -> None:
        """NodeStageVolume of ``fs-…:/data`` (no zone needed), checked through the node's own
        view of the mount (it has a mount namespace of its own, as a pod has)."""
        (self.root / FS_ID / "data").mkdir(parents=True)
        (self.root / FS_ID / "data" / "hello").write_text("from the file system")
        staging = self.work / "staging"
        channel = self.running.channel()
        try:
            await csi.NodeStub(channel).node_stage_volume(
                stage_request(f"{FS_ID}:/data", staging), timeout=30)
        finally:
            channel.close()
        seen = Path(f"/proc/{self.pid}/root") / staging.relative_to("/") / "hello"
        assert seen.read_text() == "from the file system"

    async def healthz(self) -> str:
        """/healthz, once the endpoint listens (it starts after the CSI socket serves)."""
        await healthz(self.metrics_port)
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{self.metrics_port}/healthz") as response:
            assert response.status == 200  # degraded, not broken: no restart wanted
            return await response.text()

    async def metric(self, name: str, **labels: str) -> float:
        await healthz(self.metrics_port)  # listening
        return value(await scrape(self.metrics_port), name, **labels)


@dataclass
class Nodes:
    tmp_path: Path
    started: list[RunningBinary] = field(default_factory=list)

    async def start(self, cluster: Cluster | None, *, env: dict[str, str] | None = None,
                    cgroup: MemoryCgroup | None = None) -> Node:
        """The node binary with the local backend, its metrics endpoint, no
        ``--availability-zone``; in ``cluster``'s pod view when given."""
        index = len(self.started)
        work = self.tmp_path / f"node-{index}"
        root = work / "efs"
        root.mkdir(parents=True)
        port = free_port()
        wraps: list[Callable[[list[str]], list[str]]] = []
        environment = dict(env or {})
        if cluster is not None:
            environment = {**cluster.environment, **environment}
            account = cluster.service_account
            wraps.append(lambda argv: pod_command(argv, account))
        if cgroup is not None:
            wraps.append(cgroup.command)

        def wrap(argv: list[str]) -> list[str]:
            for outer in wraps:
                argv = outer(argv)
            return argv

        running = await start_binary(
            "node", work, ["--node-id", NODE, "--mount-backend", "local", "--local-root",
                           str(root), "--http-endpoint", f"127.0.0.1:{port}"],
            env=environment, wrap=wrap)
        self.started.append(running)
        return Node(running, port, root, work / "kubelet")


@pytest_asyncio.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[Nodes]:
    started = Nodes(tmp_path)
    yield started
    for running in started.started:
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await running.stop(timeout=30)


def helper_site(site: Path, code: str) -> dict[str, str]:
    """The environment that has every helper the node starts run ``code`` first."""
    site.mkdir()
    (site / "sitecustomize.py").write_text(code)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site),
                                                        os.environ.get("PYTHONPATH")]))}


def crashing_helper(tmp_path: Path) -> dict[str, str]:
    return helper_site(tmp_path / "crashing-helper", CRASHING_HELPER)


@dataclass(frozen=True)
class HelperGate:
    """Helpers start small and wait; each ``let_one_through`` lets exactly one go on.

    A fault-injection device, as the crashing ``sitecustomize`` is: it keeps the node idle
    while a helper fills the memory limit. Were the node's own allocation the one to meet the
    limit, the kernel could take the node too (its second selection may skip the dying helper
    before the helper's pages are uncharged: a CI run lost the node so, 7 ms after the helper).
    """

    path: Path

    def environment(self) -> dict[str, str]:
        code = GATED_HELPER.format(gate=str(self.path))
        return helper_site(self.path.parent / "gated-helper", code)

    def let_one_through(self) -> None:
        self.path.touch()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - polling another process
            await asyncio.sleep(0.1)


async def assert_registers_without_zone_saying(node: Node, cause: str) -> None:
    reply = await node.info()
    assert reply.node_id == NODE and reply.accessible_topology is None
    assert cause in await node.healthz()
    assert "availability zone unknown, still sought" in await node.healthz()
    assert await node.metric("efs_csi_node_info_without_zone_total") == 1
    assert await node.metric("efs_csi_node_zone_settled") == 0
    logs = node.running.logs()
    assert "NodeGetInfo answers without topology" in logs and cause in logs


async def test_a_helper_crashing_on_every_start(cluster: Cluster, nodes: Nodes,
                                                tmp_path: Path) -> None:
    node = await nodes.start(cluster, env=crashing_helper(tmp_path))
    await node.stage_plain_volume()  # at once: a plain volume never waits for the zone
    await assert_registers_without_zone_saying(node, "start-up helper killed by SIGABRT")

    async def restarted() -> bool:  # still sought: supervision starts it again
        return await node.metric("efs_csi_node_startup_helper_failures_total",
                                 reason="killed") >= 3
    await eventually(restarted)
    assert node.running.process.returncode is None
    assert cluster.api.taints(NODE) == [OURS]


@contextlib.contextmanager
def explained_on_failure(limited: MemoryCgroup, node_peak: int, nodes: Nodes) -> Iterator[None]:
    """On failure, print what the kernel and the node saw (a CI run once lost the node here)."""
    try:
        yield
    except BaseException:
        print(f"node alone peaked at {node_peak / 2**20:.1f} MiB; the limited cgroup at "
              f"{limited.peak_bytes() / 2**20:.1f} MiB, {limited.oom_kills()} OOM kill(s)")
        limited_node = nodes.started[-1]
        print(f"node exit status {limited_node.process.returncode}; its log ends:\n"
              + "\n".join(limited_node.logs().splitlines()[-30:]))
        print("the kernel's OOM kills in the cgroup (pid, oom_score_adj):\n"
              + "\n".join(kernel_oom_kills(limited)))
        raise


def kernel_oom_kills(cgroup: MemoryCgroup) -> list[str]:
    """The kernel log's lines on OOM kills in ``cgroup`` (empty if the log cannot be read)."""
    try:
        log = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    lines = log.splitlines()
    return [line for index, line in enumerate(lines)
            if cgroup.path.name in line or ("Killed process" in line and index > 0
                                            and cgroup.path.name in lines[index - 1])]


async def test_a_helper_the_oom_killer_takes_under_the_memory_limit(
        cluster: Cluster, nodes: Nodes, tmp_path: Path) -> None:
    """The limit is the node's own peak doing this test's work (measured here, without a
    helper) plus a little: the helper, which volunteers as the OOM victim, is killed, never
    the node. Once the limit is raised, the next restart learns the zone label and removes
    the taint. Helpers pass a gate one at a time, so that only an idle node shares the
    cgroup with a helper growing into its limit (``HelperGate`` says why)."""
    gate = HelperGate(tmp_path / "helper-pass")
    try:
        with memory_cgroup(name="efs-csi-node-alone") as alone:
            # In the pod's view (its mounts stay in its namespace), with no API to find.
            calibration = await nodes.start(cluster, env={"KUBERNETES_SERVICE_HOST": ""},
                                            cgroup=alone)
            # The same work as below, so that whatever it imports lazily (staging, the usage
            # collector, metrics) is part of the peak: a CI run once killed the node there.
            await calibration.stage_plain_volume()
            await calibration.info()
            await calibration.healthz()
            await calibration.metric("efs_csi_node_info_without_zone_total")
            await calibration.running.stop(timeout=30)
            node_peak = alone.peak_bytes()
        with memory_cgroup(node_peak + HEADROOM_BYTES, name="efs-csi-node-limited") as limited, \
                explained_on_failure(limited, node_peak, nodes):
            node = await nodes.start(cluster, cgroup=limited, env=gate.environment())
            await node.stage_plain_volume()  # the helper waits at the gate meanwhile
            # And the node's parts that start after it serves (the metrics endpoint imports
            # aiohttp, ~10 MiB) up before the helper goes on: a CI run lost the node when that
            # import met the limit while the helper grew (the kernel took both, 6.5 ms apart).
            await node.healthz()
            assert await node.metric("efs_csi_node_startup_helper_failures_total",
                                     reason="killed") == 0
            gate.let_one_through()

            async def helper_killed() -> bool:  # asks the kernel, not the node (idle)
                return limited.oom_kills() >= 1
            await eventually(helper_killed)

            async def failure_seen() -> bool:  # the next helper waits at the gate
                return await node.metric("efs_csi_node_startup_helper_failures_total",
                                         reason="killed") >= 1
            await eventually(failure_seen)
            await assert_registers_without_zone_saying(node, "start-up helper killed by SIGKILL")
            assert node.running.process.returncode is None  # never the node
            limited.set_limit(None)
            gate.let_one_through()
            reply: list[csi.NodeGetInfoResponse] = []

            async def zone_learned() -> bool:
                reply[:] = [await node.info()]
                return reply[0].accessible_topology is not None
            await eventually(zone_learned)
            assert reply[0].accessible_topology is not None
            assert reply[0].accessible_topology.segments == {TOPOLOGY_ZONE_KEY: "zone-label"}

            async def untainted() -> bool:
                return cluster.api.taints(NODE) == []
            await eventually(untainted)
            assert "availability zone learned after NodeGetInfo answered without it" in \
                node.running.logs()
            await node.running.stop(timeout=30)
    except CgroupUnavailable as exc:
        skip_or_fail(f"a memory cgroup is needed: {exc}")


async def test_an_unreachable_kubernetes_api(cluster: Cluster, nodes: Nodes) -> None:
    node = await nodes.start(cluster, env=cluster.unreachable())
    await node.stage_plain_volume()
    await assert_registers_without_zone_saying(
        node, f"Kubernetes API: cannot read Node {NODE}: kubernetes API unreachable")
    assert await node.metric("efs_csi_node_startup_helper_failures_total",
                             reason="kubernetes_api") >= 1


async def test_instance_metadata_gives_the_zone_whatever_the_helper_does(
        cluster: Cluster, nodes: Nodes, tmp_path: Path) -> None:
    async with running_imds() as imds:
        node = await nodes.start(cluster, env={**crashing_helper(tmp_path),
                                               **imds.environment()})
        reply = await node.info()
    assert reply.accessible_topology is not None
    assert reply.accessible_topology.segments == {TOPOLOGY_ZONE_KEY: imds.zone}
    assert await node.metric("efs_csi_node_info_without_zone_total") == 0
    assert (await node.healthz()) == "ok\n"
