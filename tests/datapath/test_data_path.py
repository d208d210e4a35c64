"""NodeStage / NodePublish / NodeUnpublish / NodeUnstage through the production data path: the
node image as the chart runs it, efs-utils v3.2.0's mount.efs, efs-proxy over TLS with the
certificate checked, the watchdog the node supervises, a TLS mount target and nfs-ganesha, in a
loopback-only namespace (testbed/datapath). Only the kernel's NFS mount is stood in for.

The tests share one data path and run in file order, so that the watchdog's fixed 30 s
"was it really unmounted" delay is paid once: volumes are unstaged as each test ends, and
``test_the_watchdog_leaves_nothing_after_unstage`` near the end waits for all of them at once,
while the slow cases (a wrong certificate, a hanging mount, 50 cycles) ran in between.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from grpclib import GRPCError, Status

from testbed.datapath.client import NodeClient, Volume
from testbed.datapath.harness import FILE_SYSTEM, HANG_MARKER, DataPath
from testbed.datapath.libnfs import url
from testbed.datapath.servers import MOUNT_TARGET, WRONG_TARGET
from testbed.datapath.trace import ConnectTrace
from tests.datapath.observe import (
    container_processes,
    efs_proxies,
    leftovers,
    live_tunnels,
    mounts_under,
    node_metrics,
    tunnel_config,
    tunnel_for,
    wait_until,
)
from tests.support.scrape import value

ACCESS_POINT = "fsap-0123456789abcdef0"
CYCLES = 50


@dataclass
class Flow:
    """What the tests of this module share."""

    path: DataPath
    client: NodeClient
    traces: list[ConnectTrace] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def volume(self, name: str, volume_id: str = FILE_SYSTEM, *,
               context: dict[str, str] | None = None, flags: tuple[str, ...] = ()) -> Volume:
        return Volume(name, volume_id, self.path.kubelet, context, flags)

    def trace_node(self, name: str) -> None:
        """Trace every connect() of the node container's processes from now on."""
        assert self.path.node is not None
        trace = ConnectTrace(self.path.work / f"connect-{name}.strace")
        trace.attach([process.pid for process in self.path.node.processes()])
        self.traces.append(trace)


@pytest.fixture(scope="module")
def flow(datapath: DataPath, report: Callable[[str], None]) -> Iterator[Flow]:
    shared = Flow(datapath, NodeClient(datapath.socket))
    shared.trace_node("start")
    try:
        yield shared
    finally:
        for trace in shared.traces:
            trace.stop()
        report("data path flow (" + ", ".join(
            f"{name} {seconds:.1f}s" for name, seconds in shared.timings.items()) + ")")


def write_server_side(path: DataPath, directory: str, name: str) -> tuple[str, bytes]:
    """A file written on the NFS server's side; its path below the export and content."""
    content = f"{name} written on the server at {time.time()}\n".encode()
    folder = path.export / directory.strip("/") / "data"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.txt").write_bytes(content)
    relative = "/".join(part for part in (directory.strip("/"), "data", f"{name}.txt") if part)
    return relative, content


@dataclass(frozen=True)
class Case:
    name: str
    volume_id: str
    context: dict[str, str] | None = None
    flags: tuple[str, ...] = ()
    subdirectory: str = ""
    tls: bool = True


CASES = [
    Case("plain", FILE_SYSTEM),
    Case("subpath", f"{FILE_SYSTEM}:/team-a", subdirectory="team-a"),
    Case("accesspoint", f"{FILE_SYSTEM}::{ACCESS_POINT}"),
    Case("tlsport", FILE_SYSTEM, flags=("tlsport=20500",)),
    Case("notls", FILE_SYSTEM, context={"encryptInTransit": "false"}, tls=False),
    Case("mounttargetip", FILE_SYSTEM, context={"mounttargetip": MOUNT_TARGET[0]}),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_stage_publish_unpublish_unstage_through_the_real_chain(flow: Flow,
                                                                       case: Case) -> None:
    path, client = flow.path, flow.client
    relative, content = write_server_side(path, case.subdirectory, case.name)
    volume = flow.volume(case.name, case.volume_id, context=case.context, flags=case.flags)
    begin = time.monotonic()
    await client.stage(volume)
    flow.timings[f"stage_{case.name}"] = time.monotonic() - begin
    calls = [call for call in path.calls() if call.target == str(volume.staging)]
    assert len(calls) == 1 and calls[0].code == 0, calls
    call = calls[0]
    tunnel = tunnel_for(path, volume.staging)
    # efs-utils 3.2.0 mounts every volume through efs-proxy's local port: with TLS (--tls),
    # or in plain text for encryptInTransit "false".
    assert call.source == "127.0.0.1:/" + case.subdirectory
    assert call.options.get("port") == str(tunnel.port)
    command = efs_proxies(path)[tunnel.pid]
    config = tunnel_config(path, tunnel)
    connect = {"mounttargetip": f"connect = {MOUNT_TARGET[0]}:2049"}.get(
        case.name, f"connect = {FILE_SYSTEM}.efs.us-east-1.amazonaws.com:2049")
    assert connect in config, config
    if case.tls:
        assert "--tls" in command.split()
        # Certificate checking is on: the local CA, and the file system's name.
        assert "CAfile = /etc/efs-csi-test-ca/ca.pem" in config
        assert f"checkHost = {FILE_SYSTEM}.efs.us-east-1.amazonaws.com" in config
    else:
        assert "--tls" not in command.split()
        assert "checkHost" not in config
    if case.name == "accesspoint":
        assert tunnel.state["accessPoint"] == ACCESS_POINT
    if case.name == "tlsport":
        assert tunnel.port == 20500
    # Data written on the server, read through the tunnel over NFSv4 with libnfs.
    through = await asyncio.to_thread(
        path.libnfs().cat, url("127.0.0.1", tunnel.port, "/" + relative))
    assert through == content
    await client.publish(volume)
    assert path.node is not None
    shown = path.node.exec("cat", str(volume.target / "data" / f"{case.name}.txt"))
    assert shown.encode() == content
    await client.unpublish(volume)
    await client.unstage(volume)
    assert mounts_under(path, volume.staging.parent) == []
    assert mounts_under(path, volume.target.parent) == []


@pytest.mark.asyncio
async def test_a_wrong_certificate_and_a_hanging_mount_fail_and_leave_nothing(
        flow: Flow) -> None:
    """Both run at once (each takes the node's mount time limit at most). A mount target whose
    certificate names another file system is refused; a mount.nfs4 that never returns is
    killed on the node's time limit, and what mount.efs had made for it is removed at once:
    no efs-proxy, no ``~fs-`` state file, no ``+`` directory, no configuration."""
    path, client = flow.path, flow.client
    wrong = flow.volume("wrong-certificate", context={"mounttargetip": WRONG_TARGET[0]})
    hung = flow.volume(f"{HANG_MARKER}-1")
    before = set(efs_proxies(path))
    begin = time.monotonic()
    results = await asyncio.gather(client.stage(wrong), client.stage(hung),
                                   return_exceptions=True)
    flow.timings["wrong_certificate_and_hang"] = time.monotonic() - begin
    refused, timed_out = results
    assert isinstance(refused, GRPCError), refused
    # efs-proxy only times out on a refused handshake; the node names the certificate.
    assert refused.status in (Status.DEADLINE_EXCEEDED, Status.INTERNAL), refused
    assert "certificate" in (refused.message or ""), refused.message
    assert f"{FILE_SYSTEM}.efs.us-east-1.amazonaws.com" in (refused.message or "")
    assert isinstance(timed_out, GRPCError), timed_out
    assert timed_out.status == Status.DEADLINE_EXCEEDED, timed_out
    assert "did not finish" in (timed_out.message or "")
    hung_calls = [call for call in path.calls() if call.target == str(hung.staging)]
    assert hung_calls and all(call.code is None for call in hung_calls), hung_calls
    for volume in (wrong, hung):
        assert leftovers(path, volume.staging) == [], volume.name
        assert mounts_under(path, volume.staging.parent) == []
    assert set(efs_proxies(path)) <= before, efs_proxies(path)


def tunnels_counted_as_they_are(path: DataPath) -> bool:
    """the node's efs_csi_node_efs_proxy_tunnels match the state files and the processes"""
    expected = live_tunnels(path)
    samples = node_metrics(path)
    counted = (int(value(samples, "efs_csi_node_efs_proxy_tunnels", state="running")),
               int(value(samples, "efs_csi_node_efs_proxy_tunnels", state="not_running")))
    return counted == expected and expected == live_tunnels(path)


@pytest.mark.asyncio
async def test_the_watchdog_restarts_a_killed_efs_proxy(flow: Flow) -> None:
    """tlsport=2049: the one port the watchdog can match on the stand-in mount (FUSE cannot
    show ``port=`` in /proc/mounts; a kernel NFS mount does)."""
    path, client = flow.path, flow.client
    volume = flow.volume("watched", flags=("tlsport=2049",))
    await client.stage(volume)
    await client.publish(volume)
    old = tunnel_for(path, volume.staging)
    assert path.node is not None
    wait_until(lambda: tunnels_counted_as_they_are(path), timeout=30)
    before = node_metrics(path)  # the node has now seen the old pid
    assert value(before, "efs_csi_node_efs_proxy_tunnels", state="running") >= 1
    path.node.exec("kill", "-9", str(old.pid))
    begin = time.monotonic()

    def restarted() -> bool:
        """the state file names a new, running efs-proxy"""
        current = tunnel_for(path, volume.staging)
        return current.pid != old.pid and current.pid in efs_proxies(path)

    wait_until(restarted, timeout=60)
    flow.timings["watchdog_restart"] = time.monotonic() - begin
    # The node's metrics, read from the real state files, saw it: one restart, every tunnel
    # counted as it is, and the watchdog itself never had to be started again.
    wait_until(lambda: tunnels_counted_as_they_are(path), timeout=30)
    after = node_metrics(path)
    assert value(after, "efs_csi_node_efs_proxy_restarts_total") \
        == value(before, "efs_csi_node_efs_proxy_restarts_total") + 1
    assert value(after, "efs_csi_node_efs_utils_watchdog_restarts_total") == 0
    relative, content = write_server_side(path, "", "after-restart")
    assert await asyncio.to_thread(path.libnfs().cat, url("127.0.0.1", 2049, "/" + relative)) \
        == content


def test_a_killed_watchdog_is_started_again_and_counted(flow: Flow) -> None:
    """The node supervises efs-utils' watchdog: killed, it runs again (with its backoff) and
    efs_csi_node_efs_utils_watchdog_restarts_total counts it; the tunnels keep running."""
    path = flow.path
    assert path.node is not None

    def watchdogs() -> list[int]:
        return [pid for pid, command in container_processes(path).items()
                if "amazon-efs-mount-watchdog" in command]

    before = node_metrics(path)
    old = watchdogs()
    assert len(old) == 1, container_processes(path)
    path.node.kill_process("amazon-efs-mount-watchdog")
    begin = time.monotonic()

    def started_again() -> bool:
        """one watchdog runs, not the killed one"""
        now = watchdogs()
        return len(now) == 1 and now != old

    wait_until(started_again, timeout=60)
    flow.timings["watchdog_supervised"] = time.monotonic() - begin
    after = node_metrics(path)
    assert value(after, "efs_csi_node_efs_utils_watchdog_restarts_total") \
        == value(before, "efs_csi_node_efs_utils_watchdog_restarts_total") + 1
    wait_until(lambda: tunnels_counted_as_they_are(path), timeout=30)
    assert value(node_metrics(path), "efs_csi_node_efs_proxy_tunnels", state="running") >= 1


@pytest.mark.asyncio
async def test_after_a_node_restart_tunnels_are_revived_and_unstage_cleans_up(
        flow: Flow) -> None:
    """The node process killed (its container exits, every process in it with it: the tunnels
    too) and its container started again with the same state directory, as kubelet does: the
    staged volume is still mounted, the new node's watchdog revives its tunnel, and unstage
    through the new node cleans up."""
    path, client = flow.path, flow.client
    volume = flow.volume("watched", flags=("tlsport=2049",))
    assert path.node is not None
    path.node.kill_process("efs-csi-node")
    path.node.wait_exited()
    begin = time.monotonic()
    path.start_node()
    flow.timings["node_restart"] = time.monotonic() - begin
    flow.trace_node("restarted")
    assert mounts_under(path, volume.staging), "the staged mount did not survive"

    def revived() -> bool:
        """the state file names a running efs-proxy"""
        return tunnel_for(path, volume.staging).pid in efs_proxies(path)

    wait_until(revived, timeout=60)
    flow.timings["tunnel_revived"] = time.monotonic() - begin
    wait_until(lambda: tunnels_counted_as_they_are(path), timeout=30)  # the new node's too
    relative, content = write_server_side(path, "", "after-node-restart")
    assert await asyncio.to_thread(path.libnfs().cat, url("127.0.0.1", 2049, "/" + relative)) \
        == content
    assert path.node.exec("cat", str(volume.target / relative)).encode() == content
    await client.unpublish(volume)
    await client.unstage(volume)
    assert mounts_under(path, volume.staging.parent) == []


@pytest.mark.asyncio
async def test_stage_unstage_cycles_leak_no_mount(flow: Flow) -> None:
    path, client = flow.path, flow.client
    begin = time.monotonic()
    for cycle in range(CYCLES):
        volume = flow.volume(f"cycle-{cycle}")
        await client.stage(volume)
        await client.unstage(volume)
    flow.timings[f"{CYCLES}_cycles"] = time.monotonic() - begin
    assert mounts_under(path, path.kubelet, itself=False) == []
    assert len([call for call in path.calls() if "/cycle-" in call.target]) == CYCLES


def test_the_watchdog_leaves_nothing_after_unstage(flow: Flow) -> None:
    """Once for every volume of this module: the watchdog the node supervises removes each
    unstaged mount's state and stops its efs-proxy (its fixed 30 s delay, then the grace
    period), and the stand-in's mounts are gone. 0 leaked efs-proxy, state files or mounts."""
    path = flow.path

    def clean() -> bool:
        """no efs-proxy, no state file, no tunnel configuration left"""
        return not efs_proxies(path) and not leftovers(path)

    try:
        flow.timings["watchdog_cleanup_wait"] = wait_until(clean, timeout=150, interval=1)
    except AssertionError:
        raise AssertionError(f"left: {leftovers(path)}; efs-proxy: {efs_proxies(path)}") \
            from None
    assert mounts_under(path, path.kubelet, itself=False) == []
    assert path.node is not None
    running = container_processes(path)
    assert not [command for command in running.values() if "mount" in command.split()[0]], \
        running


def test_no_connection_leaves_loopback(flow: Flow) -> None:
    """Every connect() of the node, mount.efs, efs-proxy, the watchdog and mount.nfs4 went to
    loopback (nothing to instance metadata, DNS or AWS), and the tunnels did connect to the
    mount target."""
    for trace in flow.traces:
        trace.stop()
    connects = [connect for trace in flow.traces for connect in trace.connects()]
    assert [c.line for c in connects if not c.loopback] == []
    assert any(c.address == MOUNT_TARGET[0] and c.port == 2049 for c in connects), \
        [c.line for c in connects][:20]
    assert not any(c.address.startswith("169.254.") for c in connects)


def test_where_the_time_went(flow: Flow, datapath: DataPath,
                             report: Callable[[str], None]) -> None:
    """Not a check of speed (benchmarks do that): the figures, printed at the end."""
    assert flow.timings and datapath.timings
    report("data path: " + ", ".join(f"{name} {seconds:.1f}s"
                                     for name, seconds in flow.timings.items()))
