"""Containers of the data path: the network sandbox, and a driver container run as its pod
spec says (``testbed.pods`` turns a rendered pod into ``docker run`` options).

- ``Sandbox``: a container holding a loopback-only network namespace, as a pod's sandbox
  (pause) container holds the pod's. The node's pod uses the host network; here the "host"
  network is this namespace, so nothing the node or efs-utils does can reach past loopback,
  and the mount target's servers (``testbed.datapath.servers``) run inside it too. A node
  container joins it (``--network container:``) and keeps it across restarts.
- ``Container``: one driver container, started, killed and started again as kubelet would,
  with the views a test needs from outside: its processes (host pids, by PID namespace, so the
  tunnels efs-utils re-parents count too), their memory, files under its root.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.images import Engine


@dataclass(frozen=True)
class Process:
    pid: int  # on the host
    command: list[str]
    rss_kib: int
    pss_kib: int

    @property
    def name(self) -> str:
        return os.path.basename(self.command[0]) if self.command else "?"

    @property
    def naming_words(self) -> list[str]:
        """The words that name the process: the executable and its first argument, a Python
        interpreter's options skipped (the binaries' scripts run ``python3 -OO``)."""
        words = self.command
        if words and os.path.basename(words[0]).startswith("python"):
            words = [words[0], *(word for word in words[1:] if not word.startswith("-"))]
        return words[:2]


def _rollup(pid: int) -> tuple[int, int]:
    rss = pss = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def processes_in_pid_namespace(of_pid: int) -> list[Process]:
    """Every process in the PID namespace of ``of_pid`` (the host's view)."""
    namespace = os.readlink(f"/proc/{of_pid}/ns/pid")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "pid") != namespace:
                continue
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        command = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
        if not command:
            continue  # a zombie, or a kernel thread
        rss, pss = _rollup(int(entry.name))
        found.append(Process(int(entry.name), command, rss, pss))
    return sorted(found, key=lambda process: process.pid)


@dataclass
class Sandbox:
    engine: Engine
    name: str
    image: str

    def start(self) -> int:
        """The sandbox's pid (its network namespace is /proc/PID/ns/net)."""
        self.engine.docker("run", "-d", "--name", self.name, "--network", "none",
                           "--entrypoint", "/usr/bin/tini", self.image, "--", "sleep", "infinity")
        return self.pid

    @property
    def pid(self) -> int:
        return self.engine.container_pid(self.name)

    @property
    def network(self) -> str:
        return f"container:{self.name}"

    def remove(self) -> None:
        self.engine.docker("rm", "-f", self.name, check=False)


@dataclass
class Container:
    engine: Engine
    name: str
    image: str
    options: list[str]
    args: list[str]

    def start(self) -> None:
        self.engine.docker("run", "-d", "--name", self.name, *self.options, self.image,
                           *self.args)

    def start_again(self) -> None:
        """As kubelet restarts an exited container: same container, same volumes."""
        self.engine.docker("start", self.name)

    @property
    def pid(self) -> int:
        return self.engine.container_pid(self.name)

    def running(self) -> bool:
        result = self.engine.docker("inspect", "--format", "{{.State.Running}}", self.name,
                                    check=False)
        return result.stdout.strip() == "true"

    def processes(self) -> list[Process]:
        return processes_in_pid_namespace(self.pid)

    def kill_process(self, name: str) -> int:
        """SIGKILL the one process whose command line names ``name``; its host pid."""
        matches = [p for p in self.processes() if any(name in word for word in p.naming_words)]
        if len(matches) != 1:
            raise AssertionError(f"{len(matches)} processes named {name}: {matches}")
        os.kill(matches[0].pid, signal.SIGKILL)
        return matches[0].pid

    def wait_exited(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > end:
                raise TimeoutError(f"{self.name} still runs after {timeout}s")
            time.sleep(0.2)

    def exec(self, *command: str, check: bool = True, timeout: float = 60) -> str:
        return self.engine.docker("exec", self.name, *command, check=check,
                                  timeout=timeout).stdout

    def logs(self) -> str:
        result = self.engine.docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        self.engine.docker("rm", "-f", self.name, check=False, timeout=120)
