"""Start either binary as a real subprocess on a temporary unix socket, and stop it; read a
process's resident memory (the benchmarks)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from grpclib.client import Channel

from efs_csi import csi


def rss_bytes(pid: int) -> int:
    """The resident memory (VmRSS) of process ``pid``; 0 for one that has none (a zombie)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def rss_mib(pid: int) -> float:
    """``rss_bytes`` in MiB, for a process that must have some."""
    resident = rss_bytes(pid)
    if not resident:
        raise RuntimeError(f"no VmRSS for {pid}")
    return resident / 2**20


#: The ``binary`` fixture of tests/conftest.py: start(kind, args, env, socket_name).
StartBinary = Callable[..., Awaitable["RunningBinary"]]

#: The module each binary runs as (``python -m``), by kind.
MODULES = {"controller": "efs_csi_controller", "node": "efs_csi_node"}


@dataclass
class RunningBinary:
    kind: str
    socket: Path
    process: asyncio.subprocess.Process
    log_path: Path

    def channel(self) -> Channel:
        return Channel(path=str(self.socket))

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until Probe answers ready (the process has finished starting)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            if self.process.returncode is not None:
                raise RuntimeError(f"{self.kind} exited with {self.process.returncode}:\n"
                                   f"{self.logs()}")
            if self.socket.exists():
                channel = self.channel()
                try:
                    reply = await csi.IdentityStub(channel).probe(csi.ProbeRequest(), timeout=2)
                    if reply.ready:
                        return
                except (TimeoutError, OSError):
                    pass
                finally:
                    channel.close()
            if loop.time() > end:
                raise TimeoutError(f"{self.kind} not ready after {timeout}s:\n{self.logs()}")
            await asyncio.sleep(0.05)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), timeout)


async def start_binary(kind: str, tmp_dir: Path, args: Sequence[str] = (),
                       env: Mapping[str, str] | None = None,
                       socket_name: str = "csi.sock",
                       wrap: Callable[[list[str]], list[str]] | None = None) -> RunningBinary:
    """Run ``python -m efs_csi_controller|efs_csi_node --endpoint unix://<tmp>/csi.sock ...``
    (``kind`` is "controller" or "node") and wait until it is ready. ``wrap`` puts the command
    line inside another (a cgroup, a pod's view of the world) that ``exec``s it, keeping its
    pid."""
    if kind not in MODULES:
        raise ValueError(kind)
    socket = tmp_dir / socket_name
    log_path = tmp_dir / f"{kind}.log"
    # Test machines are never EC2 instances: skip the instance-metadata lookups' timeouts.
    full_env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true", **(env or {})}
    base = ["--endpoint", f"unix://{socket}", "--log-format", "json"]
    if kind == "node" and "--node-id" not in args:
        base += ["--node-id", "test-node"]
    with log_path.open("wb") as log:
        argv = [sys.executable, "-m", MODULES[kind], *base, *args]
        process = await asyncio.create_subprocess_exec(
            *(wrap(argv) if wrap else argv),
            stdout=log, stderr=asyncio.subprocess.STDOUT, env=full_env,
        )
    running = RunningBinary(kind, socket, process, log_path)
    try:
        await running.wait_ready()
    except BaseException:
        await running.stop(signal.SIGKILL)
        raise
    return running
