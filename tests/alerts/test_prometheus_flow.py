"""The chart's alerts and dashboard against a real Prometheus (Debian's) scraping the real
binaries while real faults are driven through them.

On loopback: moto behind the project's EFS proxy is the EFS API; one controller; node A with the
local backend (run as EFS's root squashing leaves root, so part of a volume is unreadable), two
of its file systems served through FUSE, one slow and one whose server is killed; node B in a
pod's view of the world, its start-up helper talking to a fake Kubernetes API that fails. The
PrometheusRule is the chart's, rendered by helm, with every duration scaled from minutes to
seconds (tests/alerts/rules.py: the one change; promtool checks the rules unscaled).

Each fault makes its alert fire, with its labels, and the alert goes back to inactive when the
fault ends; no other alert is ever active (pending or firing) along the way; at the end every
alerting rule is inactive. Every dashboard query returns a number at some point of the flow, and
its series carry the labels its legend names. The times from a fault to its alert, and from its
end to the alert's end, are printed in the run's summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from grpclib.client import Channel
from grpclib.exceptions import GRPCError

from efs_csi import csi
from efs_csi.contract import NOT_READY_TAINT, PLUGIN_NAME, TOPOLOGY_ZONE_KEY
from testbed.csi_builders import mount_capability, publish_request, stage_request
from testbed.efs_proxy import EfsProxy, make_file_system
from testbed.in_cluster import in_cluster_environment, pod_command, service_account_files
from testbed.kube_api import FakeKubeApi, TlsFiles
from testbed.mounts import unmount_everything_under
from testbed.processes import RunningBinary, start_binary
from tests.alerts.flow import FuseVolume, Watcher, fuse_volumes
from tests.alerts.prometheus import Labels, Prometheus, free_port, running_prometheus
from tests.alerts.rules import (
    TIME_SCALE,
    dashboard_targets,
    prometheus,
    rendered_dashboard,
    rendered_groups,
    scaled,
)
from tests.support.ci import require_root, skip_or_fail
from tests.support.du import ROOT_SQUASHED
from tests.support.scrape import scrape, value

pytestmark = [pytest.mark.slow, pytest.mark.asyncio, pytest.mark.timeout(600)]

CONTROLLER_JOB, NODE_JOB = "efs-csi-controller", "efs-csi-node"
# Node A's file systems (local backend: a directory each).
FS_HEALTHY, FS_SLOW, FS_FRAGILE = ("fs-0000000000000aaa", "fs-0000000000000bbb",
                                   "fs-0000000000000ccc")
NODE_B = "node-b"
OTHER_UID = 4242  # owns what node A (root, squashed) may not read
ACCESS_POINT_LIMIT = 100
GID_RANGE = (1000, 1009)
# Node A refreshes usage every 3 s; a walk of the slow file system takes several seconds.
REFRESH_MINUTES = 0.05
SLOW_FILES, SLOW_DELAY_S = 120, 0.03


def create_request(name: str, file_system_id: str,
                   gid_range: tuple[int, int] | None = None) -> csi.CreateVolumeRequest:
    """What csi-provisioner sends for a PVC of a StorageClass with ``gid_range``."""
    parameters = {"provisioningMode": "efs-ap", "fileSystemId": file_system_id,
                  "directoryPerms": "700", "basePath": "/dynamic",
                  "csi.storage.k8s.io/pvc/name": name,
                  "csi.storage.k8s.io/pvc/namespace": "alerts",
                  "csi.storage.k8s.io/pv/name": name}
    if gid_range is not None:
        parameters |= {"gidRangeStart": str(gid_range[0]), "gidRangeEnd": str(gid_range[1])}
    return csi.CreateVolumeRequest(name=name, capacity_range=csi.CapacityRange(
        required_bytes=1 << 30), volume_capabilities=[mount_capability()],
        parameters=parameters)


@dataclass
class Timings:
    rows: list[tuple[str, str, float, float]] = field(default_factory=list)

    def add(self, alert: str, subject: str, fired_s: float, gone_s: float) -> None:
        self.rows.append((alert, subject, fired_s, gone_s))


@dataclass
class Restartable:
    """A binary that can be stopped and started again on the same metrics port."""

    kind: str
    directory: Path
    args: list[str]
    env: dict[str, str]
    wrap: Callable[[list[str]], list[str]] | None = None
    running: RunningBinary | None = None
    runs: int = 0

    async def start(self) -> RunningBinary:
        self.runs += 1
        directory = self.directory / f"run-{self.runs}"
        directory.mkdir(parents=True)
        self.running = await start_binary(self.kind, directory, self.args, self.env,
                                          wrap=self.wrap)
        return self.running

    async def stop(self) -> None:
        if self.running is not None and self.running.process.returncode is None:
            try:
                await self.running.stop(timeout=20)
            except TimeoutError:
                await self.running.stop(signal.SIGKILL)

    @contextlib.asynccontextmanager
    async def channel(self) -> AsyncIterator[Channel]:
        assert self.running is not None
        channel = self.running.channel()
        try:
            yield channel
        finally:
            channel.close()


@dataclass
class Lab:
    work: Path
    proxy: EfsProxy
    watcher: Watcher
    controller: Restartable
    node_a: Restartable
    node_b: Restartable
    api: FakeKubeApi
    ports: dict[str, int]
    fuse: dict[str, FuseVolume]
    timings: Timings = field(default_factory=Timings)

    def instance(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"


def needs() -> None:
    require_root()
    for command in ("setpriv", "unshare", "findmnt"):
        if shutil.which(command) is None:
            skip_or_fail(f"util-linux's {command} is needed")
    prometheus()  # skips (fails under CI) when Debian's prometheus is missing
    from testbed.slowfs import libfuse_available
    if not libfuse_available():
        skip_or_fail("libfuse 3 and /dev/fuse are needed (make test installs fuse3)")


def owned_by_another(path: Path) -> None:
    for directory, subdirectories, files in os.walk(path):
        for name in [directory, *(os.path.join(directory, e) for e in subdirectories + files)]:
            os.chown(name, OTHER_UID, OTHER_UID)
    path.chmod(0o700)


@contextlib.asynccontextmanager
async def lab(work: Path, proxy: EfsProxy) -> AsyncIterator[Lab]:
    ports = {name: free_port() for name in ("controller", "node-a", "node-b")}
    # Node A: a healthy file system with a part it may not read, a slow one, a fragile one.
    root_a = work / "node-a-efs"
    (root_a / FS_HEALTHY / "data" / "mine").mkdir(parents=True)
    (root_a / FS_HEALTHY / "data" / "mine" / "file").write_bytes(os.urandom(64_000))
    (root_a / FS_HEALTHY / "data" / "theirs").mkdir()
    (root_a / FS_HEALTHY / "data" / "theirs" / "file").write_bytes(os.urandom(8_000))
    owned_by_another(root_a / FS_HEALTHY / "data" / "theirs")
    slow_backing, fragile_backing = work / "slow-backing", work / "fragile-backing"
    for index in range(SLOW_FILES):
        (slow_backing / f"d{index % 6}").mkdir(parents=True, exist_ok=True)
        (slow_backing / f"d{index % 6}" / f"f{index}").write_bytes(b"x" * 100)
    fragile_backing.mkdir()
    (fragile_backing / "hello").write_text("soon gone")
    slow = FuseVolume(slow_backing, root_a / FS_SLOW, SLOW_DELAY_S)
    fragile = FuseVolume(fragile_backing, root_a / FS_FRAGILE, 0.0)
    # Node B: a pod whose Kubernetes API fails the Node's GET (the start-up helper's).
    tls = TlsFiles.create(work / "tls")
    api = FakeKubeApi()
    api.add_node(NODE_B, taints=[{"key": NOT_READY_TAINT, "effect": "NoExecute"}],
                 labels={TOPOLOGY_ZONE_KEY: "us-east-1b"})
    api.set_csinode(NODE_B, [PLUGIN_NAME])
    api.faults[("GET", f"/api/v1/nodes/{NODE_B}")] = [503] * 100_000
    await api.start(tls)
    account = service_account_files(work / "sa", api.token, tls.certificate)
    env = proxy.environment()
    controller = Restartable("controller", work / "controller", [
        "--region", "us-east-1", "--access-point-limit", str(ACCESS_POINT_LIMIT),
        "--http-endpoint", f"127.0.0.1:{ports['controller']}"], env)
    node_a = Restartable("node", work / "node-a", [
        "--node-id", "node-a", "--availability-zone", "us-east-1a", "--mount-backend", "local",
        "--local-root", str(root_a), "--remove-not-ready-taint=false", "--vol-metrics-opt-in",
        "--vol-metrics-refresh-period", str(REFRESH_MINUTES),
        "--vol-metrics-walk-concurrency", "1", "--mount-health-period", "1",
        "--http-endpoint", f"127.0.0.1:{ports['node-a']}"], env,
        wrap=lambda argv: [*ROOT_SQUASHED, *argv])
    node_b = Restartable("node", work / "node-b", [
        "--node-id", NODE_B, "--mount-backend", "local", "--local-root", str(work / "b-efs"),
        "--http-endpoint", f"127.0.0.1:{ports['node-b']}"],
        {**env, **in_cluster_environment(api.port)},
        wrap=lambda argv: pod_command(argv, account))
    (work / "b-efs").mkdir()
    # The node's refresh period is real time (3 s); the chart's, like every duration of the
    # rules, is in the flow's scaled time: 3 of its minutes are the node's 3 s.
    groups = scaled(rendered_groups(
        {"node": {"volMetricsRefreshPeriod": REFRESH_MINUTES * TIME_SCALE}}), TIME_SCALE)
    queries = list(dashboard_targets(rendered_dashboard()))
    jobs = {CONTROLLER_JOB: [f"127.0.0.1:{ports['controller']}"],
            NODE_JOB: [f"127.0.0.1:{ports['node-a']}", f"127.0.0.1:{ports['node-b']}"]}
    tasks: list[asyncio.Task[None]] = []
    try:
        with fuse_volumes(slow, fragile):
            try:
                # The binaries first: Prometheus' first scrape finds them all up.
                for binary in (controller, node_a, node_b):
                    await binary.start()
                async with running_prometheus(work / "prometheus", jobs, groups) as server:
                    await all_scraped(server, 3)  # faults start from series it has seen
                    watcher = Watcher(server, queries)
                    tasks = [asyncio.create_task(watcher.watch_alerts()),
                             asyncio.create_task(watcher.run_queries(rate_interval="5s"))]
                    try:
                        yield Lab(work, proxy, watcher, controller, node_a, node_b, api, ports,
                                  {"slow": slow, "fragile": fragile})
                    finally:
                        for task in tasks:
                            task.cancel()
                        await asyncio.gather(*tasks, return_exceptions=True)
            finally:  # the nodes before their file systems
                for binary in (node_b, node_a, controller):
                    await binary.stop()
                await asyncio.to_thread(unmount_everything_under, work / "kubelet-a")
    finally:
        await api.stop()
        await asyncio.to_thread(unmount_everything_under, work)


async def all_scraped(server: Prometheus, count: int) -> None:
    async with asyncio.timeout(60):
        while list((await server.targets_up()).values()) != ["up"] * count:  # noqa: ASYNC110
            await asyncio.sleep(0.2)  # Prometheus' own schedule: nothing to wait on


# --- the controller: capacity, the EFS API, down ---------------------------------------------


async def create(lab: Lab, names: list[str], file_system_id: str,
                 gid_range: tuple[int, int] | None = None) -> list[str]:
    async def one(name: str) -> str:
        async with lab.controller.channel() as channel:
            reply = await csi.ControllerStub(channel).create_volume(
                create_request(name, file_system_id, gid_range), timeout=60)
        assert reply.volume is not None
        return reply.volume.volume_id

    volume_ids: list[str] = []
    for start in range(0, len(names), 10):
        volume_ids += await asyncio.gather(*(one(n) for n in names[start:start + 10]))
    return volume_ids


async def delete(lab: Lab, volume_id: str) -> None:
    async with lab.controller.channel() as channel:
        await csi.ControllerStub(channel).delete_volume(
            csi.DeleteVolumeRequest(volume_id=volume_id), timeout=60)


async def controller_scenarios(lab: Lab) -> None:
    watch = lab.watcher
    fs_gid = make_file_system(lab.proxy.url).file_system_id
    fs_ap = make_file_system(lab.proxy.url).file_system_id
    fs_load = make_file_system(lab.proxy.url).file_system_id

    # A GID range nearly used up, and a file system near its access point limit.
    began = watch.now()
    gid_volumes = await create(lab, [f"gid-{i}" for i in range(10)], fs_gid, GID_RANGE)
    ap_volumes = await create(lab, [f"ap-{i}" for i in range(91)], fs_ap)
    gid = {"file_system_id": fs_gid, "gid_range": f"{GID_RANGE[0]}-{GID_RANGE[1]}"}
    ap = {"file_system_id": fs_ap}
    fired = await asyncio.gather(watch.firing("EfsCsiGidRangeNearlyExhausted", gid, began),
                                 watch.firing("EfsCsiAccessPointLimitNear", ap, began))
    ended = watch.now()
    for volume_id in gid_volumes[:3] + ap_volumes[:11]:  # 70 % and 80 % left
        await delete(lab, volume_id)
    gone = await asyncio.gather(watch.gone("EfsCsiGidRangeNearlyExhausted", gid, ended),
                                watch.gone("EfsCsiAccessPointLimitNear", ap, ended))
    lab.timings.add("EfsCsiGidRangeNearlyExhausted", "10 of 10 GIDs", fired[0], gone[0])
    lab.timings.add("EfsCsiAccessPointLimitNear", f"91 of {ACCESS_POINT_LIMIT}", fired[1],
                    gone[1])

    # EFS throttling 30 % of CreateAccessPoint under a steady load of creates and deletes.
    lab.proxy.inject(throttle=0.3, operations=["CreateAccessPoint"])
    throttled = {"request": "CreateAccessPoint"}
    began = watch.now()
    stop = asyncio.Event()

    async def churn(worker: int) -> None:  # four PVCs at a time, made and deleted
        for number in range(10_000):
            if stop.is_set():
                return
            with contextlib.suppress(GRPCError):  # one now and then may run out of retries
                (volume_id,) = await create(lab, [f"load-{worker}-{number}"], fs_load)
                await delete(lab, volume_id)

    load = asyncio.gather(*(churn(worker) for worker in range(4)))
    try:
        fired_s = await watch.firing("EfsCsiEfsApiThrottled", throttled, began)
    finally:
        stop.set()
        await load
    lab.proxy.clear_faults()
    ended = watch.now()
    lab.timings.add("EfsCsiEfsApiThrottled", "30 % of CreateAccessPoint", fired_s,
                    await watch.gone("EfsCsiEfsApiThrottled", throttled, ended))

    # DeleteAccessPoint refused (a broken IAM policy) while PVs are released.
    left = gid_volumes[3:] + ap_volumes[11:]
    lab.proxy.inject(fail_with=(403, "AccessDeniedException"), operations=["DeleteAccessPoint"])
    failing = {"method": "DeleteVolume"}
    began = watch.now()
    stop = asyncio.Event()

    async def releasing() -> None:  # csi-provisioner retrying the deletes
        index = 0
        while not stop.is_set():
            with contextlib.suppress(GRPCError):
                await delete(lab, left[index % len(left)])
            index += 1
            await asyncio.sleep(0.2)

    retrying = asyncio.create_task(releasing())
    try:
        fired_s = await watch.firing("EfsCsiProvisioningFailing", failing, began)
    finally:
        stop.set()
        await retrying
    lab.proxy.clear_faults()
    ended = watch.now()
    for start in range(0, len(left), 10):
        await asyncio.gather(*(delete(lab, v) for v in left[start:start + 10]))
    lab.timings.add("EfsCsiProvisioningFailing", "DeleteVolume: AccessDenied", fired_s,
                    await watch.gone("EfsCsiProvisioningFailing", failing, ended))

    # The controller down, then back.
    began = watch.now()
    await lab.controller.stop()
    fired_s = await watch.firing("EfsCsiControllerDown", {}, began)
    ended = watch.now()
    await lab.controller.start()
    lab.timings.add("EfsCsiControllerDown", "stopped", fired_s,
                    await watch.gone("EfsCsiControllerDown", {}, ended))


# --- node A: slow walks, failing mounts, a stale volume ----------------------------------------


async def node_a_scenarios(lab: Lab) -> None:
    watch, node = lab.watcher, lab.node_a
    kubelet = lab.work / "kubelet-a"
    volumes = {"healthy": f"{FS_HEALTHY}:/data", "slow": FS_SLOW, "fragile": FS_FRAGILE}
    staging = {name: kubelet / "staging" / name for name in volumes}
    target = {name: kubelet / "pods" / name / "mount" for name in volumes}
    for name, volume_id in volumes.items():
        async with node.channel() as channel:
            await csi.NodeStub(channel).node_stage_volume(
                stage_request(volume_id, staging[name]), timeout=30)
            await csi.NodeStub(channel).node_publish_volume(
                publish_request(volume_id, staging[name], target[name]), timeout=30)
    asking = {"healthy", "slow"}

    async def kubelet_asks_for_usage() -> None:  # as kubelet's volume stats collection does
        while True:
            for name in list(asking):
                with contextlib.suppress(GRPCError, TimeoutError):
                    async with node.channel() as channel:
                        await csi.NodeStub(channel).node_get_volume_stats(
                            csi.NodeGetVolumeStatsRequest(volume_id=volumes[name],
                                                          volume_path=str(target[name])),
                            timeout=10)
            await asyncio.sleep(1.0)

    usage = asyncio.create_task(kubelet_asks_for_usage())
    instance = {"instance": lab.instance("node-a")}
    began = watch.now()
    # Mounts failing: a volume whose path does not exist, retried as kubelet does.
    for attempt in range(6):
        async with node.channel() as channel:
            with pytest.raises(GRPCError):
                await csi.NodeStub(channel).node_stage_volume(stage_request(
                    f"{FS_HEALTHY}:/missing", kubelet / "staging" / f"bad-{attempt}"), timeout=30)
    failures_ended = watch.now()
    # A stale volume: the fragile file system's server dies.
    lab.fuse["fragile"].kill_server()
    stale = {**instance, "volume_id": volumes["fragile"], "file_system_id": FS_FRAGILE}
    try:
        fired = await asyncio.gather(
            watch.firing("EfsCsiVolumeStatsWalksTooSlow", instance, began),
            watch.firing("EfsCsiMountsFailing", instance, began),
            watch.firing("EfsCsiStaleMount", stale, began))
        # The slow file system's volume goes (its pod deleted): walks end; the stale volume's
        # pod is restarted elsewhere (kubelet unpublishes and unstages it).
        ended = watch.now()
        asking.clear()
        await walks_finished(lab)  # kubelet unmounts a pod's volume once nothing uses it
        for name in ("slow", "fragile"):
            async with node.channel() as channel:
                await csi.NodeStub(channel).node_unpublish_volume(csi.NodeUnpublishVolumeRequest(
                    volume_id=volumes[name], target_path=str(target[name])), timeout=30)
                await csi.NodeStub(channel).node_unstage_volume(csi.NodeUnstageVolumeRequest(
                    volume_id=volumes[name], staging_target_path=str(staging[name])),
                    timeout=30)
        gone = await asyncio.gather(
            watch.gone("EfsCsiVolumeStatsWalksTooSlow", instance, ended),
            watch.gone("EfsCsiMountsFailing", instance, failures_ended),
            watch.gone("EfsCsiStaleMount", stale, ended))
    finally:
        usage.cancel()
        await asyncio.gather(usage, return_exceptions=True)
    lab.timings.add("EfsCsiVolumeStatsWalksTooSlow", "walks > 3 s refresh", fired[0], gone[0])
    lab.timings.add("EfsCsiMountsFailing", "6 failed NodeStage", fired[1], gone[1])
    lab.timings.add("EfsCsiStaleMount", "FUSE server killed", fired[2], gone[2])


async def walks_finished(lab: Lab) -> None:
    """Node A's usage walks have all ended (read from its own /metrics, not a scrape ago)."""
    async with asyncio.timeout(60):
        while value(await scrape(lab.ports["node-a"]),  # noqa: ASYNC110 - another process
                    "efs_csi_node_volume_stats_queue_depth") != 0:
            await asyncio.sleep(0.2)


# --- node B: the start-up helper against a failing API, down ---------------------------------


async def node_b_scenarios(lab: Lab) -> None:
    watch = lab.watcher
    instance = {"instance": lab.instance("node-b")}
    fired = await asyncio.gather(watch.firing("EfsCsiNodeWithoutTopology", instance, 0.0),
                                 watch.firing("EfsCsiStartupHelperFailing", instance, 0.0))
    lab.api.faults.clear()  # the API answers again
    ended = watch.now()
    gone = await asyncio.gather(watch.gone("EfsCsiNodeWithoutTopology", instance, ended),
                                watch.gone("EfsCsiStartupHelperFailing", instance, ended))
    assert lab.api.taints(NODE_B) == []  # the helper finished: the taint is gone
    lab.timings.add("EfsCsiNodeWithoutTopology", "API answering 503", fired[0], gone[0])
    lab.timings.add("EfsCsiStartupHelperFailing", "API answering 503", fired[1], gone[1])

    began = watch.now()
    await lab.node_b.stop()
    fired_s = await watch.firing("EfsCsiNodeDown", instance, began)
    ended = watch.now()
    await lab.node_b.start()
    lab.timings.add("EfsCsiNodeDown", "node B stopped", fired_s,
                    await watch.gone("EfsCsiNodeDown", instance, ended))


async def test_alerts_fire_on_real_faults_and_end_with_them(
        tmp_path: Path, efs_proxy: EfsProxy, report: Callable[[str], None]) -> None:
    needs()
    started = time.monotonic()
    async with lab(tmp_path, efs_proxy) as the_lab:
        async with asyncio.TaskGroup() as scenarios:  # one failing stops the others
            for scenario in (controller_scenarios, node_a_scenarios, node_b_scenarios):
                scenarios.create_task(scenario(the_lab))
        watch = the_lab.watcher
        node_a, node_b = the_lab.instance("node-a"), the_lab.instance("node-b")
        expected: dict[str, list[Labels]] = {
            "EfsCsiControllerDown": [{}],
            "EfsCsiNodeDown": [{"instance": node_b}],
            "EfsCsiProvisioningFailing": [{"method": "DeleteVolume"}],
            "EfsCsiEfsApiThrottled": [{"request": "CreateAccessPoint"}],
            "EfsCsiGidRangeNearlyExhausted": [{"gid_range": "1000-1009"}],
            "EfsCsiAccessPointLimitNear": [{}],
            "EfsCsiStaleMount": [{"instance": node_a, "file_system_id": FS_FRAGILE}],
            "EfsCsiMountsFailing": [{"instance": node_a}],
            "EfsCsiNodeWithoutTopology": [{"instance": node_b}],
            "EfsCsiStartupHelperFailing": [{"instance": node_b}],
            "EfsCsiVolumeStatsWalksTooSlow": [{"instance": node_a}],
        }
        assert watch.unexpected(expected) == []
        assert {name for name, _ in watch.seen} == set(expected)
        assert all(first is not None for first, _ in watch.seen.values()), "pending only"
        states = await watch.prometheus.rule_states()
        assert states == dict.fromkeys(expected, "inactive")
        # Every dashboard query returned a number during the flow, with its legend's labels.
        no_data = [key for key, outcome in watch.outcomes.items() if not outcome.returned_data]
        assert no_data == []
        assert len(watch.outcomes) == len(watch.queries)
        legends = {key: sorted(o.missing_legend_labels) for key, o in watch.outcomes.items()
                   if o.missing_legend_labels}
        assert legends == {}
        timings = the_lab.timings.rows
    report(f"tests/alerts flow: real Prometheus, rules scaled 1 min -> 1 s, "
           f"{len(timings)} alerts fired and ended, "
           f"{len(watch.queries)} dashboard queries returned data; "
           f"{time.monotonic() - started:.0f} s in all")
    for alert, subject, fired_s, gone_s in sorted(timings):
        report(f"  {alert:<32} {subject:<28} fired after {fired_s:5.1f} s, "
               f"inactive {gone_s:5.1f} s after the fault ended")
