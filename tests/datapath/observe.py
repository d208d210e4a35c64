"""What the tests look at in a running data path: efs-utils' state files, the tunnels and the
mounts in the node container, and waiting for the watchdog."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from efs_csi.mounting.efs_leftovers import file_safe_mount_point
from testbed.datapath.harness import DataPath
from tests.support.scrape import Samples

# The chart's node.metricsPort: the node serves it on the pod's IP, the sandbox's loopback.
NODE_METRICS_PORT = 3302


@dataclass(frozen=True)
class Tunnel:
    """A staged volume's efs-utils state: the state file and what it says."""

    name: str
    port: int
    state: dict[str, Any]

    @property
    def pid(self) -> int:  # in the node container's PID namespace
        return int(self.state["pid"])


def state_names(path: DataPath) -> list[str]:
    return sorted(entry.name for entry in path.state_dir.iterdir())


def leftovers(path: DataPath, staging: Path | None = None) -> list[str]:
    """State files, ``+`` directories and tunnel configurations (of one mount point, or all)."""
    names = [name for name in state_names(path)
             if re.match(r"^(~|stunnel-config\.)?fs-", name)]
    if staging is None:
        return names
    stem = re.escape(file_safe_mount_point(staging))
    return [name for name in names if re.search(rf"\.{stem}\.\d+\+?$", name)]


def tunnel_for(path: DataPath, staging: Path) -> Tunnel:
    pattern = re.compile(rf"^fs-[0-9a-f]+\.{re.escape(file_safe_mount_point(staging))}\.(\d+)$")
    found = [(name, match) for name in state_names(path) if (match := pattern.match(name))]
    assert len(found) == 1, f"state files for {staging}: {state_names(path)}"
    name, match = found[0]
    return Tunnel(name, int(match.group(1)), json.loads((path.state_dir / name).read_text()))


def tunnel_config(path: DataPath, tunnel: Tunnel) -> str:
    return (path.state_dir / f"stunnel-config.{tunnel.name}").read_text()


def container_processes(path: DataPath) -> dict[int, str]:
    """pid (in the container) -> command line, from the node container's own ps."""
    assert path.node is not None
    found = {}
    for line in path.node.exec("ps", "-eo", "pid=,args=").splitlines():
        pid, _, command = line.strip().partition(" ")
        found[int(pid)] = command
    return found


def efs_proxies(path: DataPath) -> dict[int, str]:
    return {pid: command for pid, command in container_processes(path).items()
            if command.startswith("/usr/bin/efs-proxy")}


_FETCH_METRICS = """
import sys, time, urllib.error, urllib.request
deadline = time.monotonic() + 30
while True:
    try:
        body = urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=10).read()
        break
    except urllib.error.URLError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
sys.stdout.write(body.decode())
"""


def node_metrics(path: DataPath) -> Samples:
    """The node's /metrics, fetched from inside its container (the sandbox's loopback). The
    node listens for them just after its CSI socket: a fresh node is waited for."""
    assert path.node is not None
    text = path.node.exec("python3", "-c", _FETCH_METRICS.format(port=NODE_METRICS_PORT))
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def live_tunnels(path: DataPath) -> tuple[int, int]:
    """(running, not running) tunnels as the node should count them: state files of mounted
    volumes (no ``unmount_time``) whose pid is, or is not, an efs-proxy in the container."""
    proxies = efs_proxies(path)
    running = not_running = 0
    for name in state_names(path):
        if not name.startswith("fs-") or not (path.state_dir / name).is_file():
            continue
        try:
            state = json.loads((path.state_dir / name).read_text())
        except (OSError, ValueError):  # rewritten meanwhile: the next look sees it
            return -1, -1
        if "unmount_time" in state:
            continue
        if state.get("pid") in proxies:
            running += 1
        else:
            not_running += 1
    return running, not_running


def mounts_under(path: DataPath, directory: Path, *, itself: bool = True) -> list[str]:
    """The node container's mounts at (unless not ``itself``) or under ``directory`` (its
    /proc/mounts lines)."""
    assert path.node is not None
    return [line for line in path.node.exec("cat", "/proc/mounts").splitlines()
            if (itself and line.split()[1] == str(directory))
            or line.split()[1].startswith(str(directory) + "/")]


def wait_until(condition: Any, timeout: float, interval: float = 0.5) -> float:
    """Poll ``condition()`` until true; the seconds it took (AssertionError on timeout)."""
    begin = time.monotonic()
    while not condition():
        if time.monotonic() - begin > timeout:
            raise AssertionError(f"not true after {timeout}s: {condition.__doc__ or condition}")
        time.sleep(interval)
    return time.monotonic() - begin
