"""The one fake of the data path: the kernel's NFS mount.

This machine's kernel has no NFS client (``mount.nfs4: No such device``), and efs-utils runs
``/sbin/mount.nfs4`` by that fixed path. In the containers under test, ``SHIM`` is bind-mounted
there. It hands its arguments over a unix socket to ``KernelStandIn``, a server in the test
process (outside the container, as the kernel is), which does what the kernel's mount would:

1. connects to the NFS server the arguments name, in the caller's network namespace: through
   efs-proxy's port (``127.0.0.1:/ ... port=P``) for a TLS mount, or to the mount target
   itself for a plain one, and lists the export over NFSv4 with libnfs; a mount whose server
   does not answer fails with exit 32 and the reason, as mount.nfs4 fails;
2. mounts the export's backing directory at the target in the caller's mount namespace
   (``testbed.datapath.lookalike``: a FUSE pass-through that /proc/mounts shows as
   ``127.0.0.1:/ TARGET fuse.nfs4``), owned by no process of the caller's container, so it
   outlives a restart of the node container as a kernel mount does.

Reads and writes through the mount go to the backing directory, not over NFS: NFS traffic is
exercised by the check above and by the tests' own libnfs reads through the tunnel. A target
listed in ``hang`` gets no answer, as from an NFS server that never replies; the shim waits
until its caller kills it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from testbed.datapath.libnfs import Libnfs, url

REPO = Path(__file__).resolve().parents[2]
# Where the shim finds the server's socket inside the container.
SOCKET_DIR_IN_CONTAINER = "/run/efs-csi-kernel-standin"
SOCKET_NAME = "kernel.sock"

SHIM = f'''#!/usr/bin/python3
"""/sbin/mount.nfs4 of the efs-csi data path tests (testbed/datapath/kernel.py): the kernel's
NFS mount is done by the test's kernel stand-in, outside this container."""
import json, socket, sys
try:
    conn = socket.socket(socket.AF_UNIX)
    conn.connect("{SOCKET_DIR_IN_CONTAINER}/{SOCKET_NAME}")
    conn.sendall(json.dumps({{"argv": sys.argv[1:]}}).encode() + b"\\n")
    data = b""
    while not data.endswith(b"\\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("no answer")
        data += chunk
except OSError as exc:
    sys.stderr.write(f"mount.nfs4: the kernel stand-in is unreachable: {{exc}}\\n")
    sys.exit(32)
answer = json.loads(data)
if answer["message"]:
    sys.stderr.write(answer["message"] + "\\n")
sys.exit(answer["code"])
'''


@dataclass(frozen=True)
class MountCall:
    """One call of the shim: its arguments, the caller (host pid), and how it ended."""

    source: str
    target: str
    options: dict[str, str | None]
    pid: int
    code: int | None  # None: left hanging
    message: str
    started: float


def parse_arguments(argv: list[str]) -> tuple[str, str, dict[str, str | None]]:
    """``SOURCE TARGET [-o OPTIONS]`` as mount.efs passes them (other flags ignored)."""
    positional, options = [], ""
    words = iter(argv)
    for word in words:
        if word == "-o":
            options = next(words, "")
        elif not word.startswith("-"):
            positional.append(word)
    if len(positional) != 2:
        raise ValueError(f"expected SOURCE TARGET, got {argv}")
    parsed: dict[str, str | None] = {}
    for item in filter(None, options.split(",")):
        key, equals, value = item.partition("=")
        parsed[key] = value if equals else None
    return positional[0], positional[1], parsed


def resolve(host: str, hosts_file: Path) -> str:
    """An address as the caller would resolve ``host``: literal, or from its /etc/hosts (the
    namespaces here have no DNS)."""
    with contextlib.suppress(OSError):
        socket.inet_aton(host)
        return host
    with contextlib.suppress(OSError):
        for line in hosts_file.read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) > 1 and host in fields[1:]:
                return fields[0]
    raise LookupError(f"{host}: no address in {hosts_file}")


def _peer_pid(connection: socket.socket) -> int:
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _uid, _gid = struct.unpack("3i", raw)
    return int(pid)


@dataclass
class KernelStandIn:
    """The server: ``start``, then ``stop``; ``calls`` records every mount."""

    socket_dir: Path
    export: Path
    no_linger: Path
    python: str = sys.executable
    hang: set[str] = field(default_factory=set)
    calls_log: Path | None = None  # one JSON line per call, for the tests to read
    calls: list[MountCall] = field(default_factory=list)
    mounts: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    _server: asyncio.Server | None = None

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / SOCKET_NAME

    def write_shim(self, path: Path) -> Path:
        path.write_text(SHIM)
        path.chmod(0o755)
        return path

    async def start(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.chmod(0o755)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(self._handle, str(self.socket_path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for pid, process in list(self.mounts.items()):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)
                try:
                    await asyncio.to_thread(process.wait, 5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
                    await asyncio.to_thread(process.wait)
        self.mounts.clear()

    def live_mounts(self) -> int:
        """FUSE servers still serving (one per mount not yet unmounted everywhere)."""
        return sum(1 for process in self.mounts.values() if process.poll() is None)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started = time.time()
        try:
            line = await reader.readline()
            argv = json.loads(line)["argv"]
            pid = _peer_pid(writer.get_extra_info("socket"))
            source, target, options = parse_arguments(argv)
        except (ValueError, KeyError, OSError) as exc:
            await self._answer(writer, 32, f"mount.nfs4: bad call: {exc}")
            return
        if any(marker in target for marker in self.hang):
            # An NFS server that never answers: hold the caller until it gives up.
            await reader.read()
            self._record(MountCall(source, target, options, pid, None, "hung", started))
            writer.close()
            return
        code, message = await self._mount(pid, source, target, options)
        self._record(MountCall(source, target, options, pid, code, message, started))
        await self._answer(writer, code, message)

    def _record(self, call: MountCall) -> None:
        self.calls.append(call)
        if self.calls_log is not None:
            with self.calls_log.open("a") as log:
                log.write(json.dumps(dataclasses.asdict(call)) + "\n")

    async def _answer(self, writer: asyncio.StreamWriter, code: int, message: str) -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(json.dumps({"code": code, "message": message}).encode() + b"\n")
            await writer.drain()
        writer.close()

    async def _mount(self, pid: int, source: str, target: str,
                     options: dict[str, str | None]) -> tuple[int, str]:
        host, _, path = source.partition(":")
        port = int(options.get("port") or 2049)
        try:
            address = resolve(host, Path(f"/proc/{pid}/root/etc/hosts"))
        except LookupError as exc:
            return 32, f"mount.nfs4: Failed to resolve server {exc}"
        nfs = Libnfs(pid, self.no_linger)
        # mount.nfs retries a server that does not answer (for 2 minutes by default): a few
        # tries here, within mount.efs' 15 s per attempt.
        for attempt in range(3):
            listed = await asyncio.to_thread(nfs.ls, url(address, port, path.rstrip("/") + "/"))
            if listed.returncode == 0:
                break
            await asyncio.sleep(1.0 + attempt)
        if listed.returncode != 0:
            error = listed.stderr.decode(errors="replace").strip()
            return 32, (f"mount.nfs4: cannot reach the NFS server {host} through "
                        f"{address}:{port}: {error}")
        backing = self.export / path.strip("/")
        read_end, write_end = os.pipe()
        try:
            process = await asyncio.to_thread(self._spawn_lookalike, pid, source, target,
                                              backing, write_end)
        finally:
            os.close(write_end)
        self.mounts[process.pid] = process
        ready = await asyncio.to_thread(_read_all, read_end)
        if ready != "ok":
            return 32, f"mount.nfs4: mounting {source} at {target} failed: {ready}"
        return 0, ""

    def _spawn_lookalike(self, pid: int, source: str, target: str, backing: Path,
                         ready_fd: int) -> subprocess.Popen[bytes]:
        log = self.socket_dir / f"lookalike-{len(self.mounts)}.log"
        with log.open("wb") as errors:
            return subprocess.Popen(
                [self.python, "-m", "testbed.datapath.lookalike", "--mount-ns",
                 f"/proc/{pid}/ns/mnt", "--source", source, "--target", target,
                 "--backing", str(backing), "--ready-fd", str(ready_fd)],
                pass_fds=(ready_fd,), start_new_session=True, cwd=REPO,
                stdin=subprocess.DEVNULL, stdout=errors, stderr=errors,
                env={**os.environ, "PYTHONPATH": str(REPO)})


def _read_all(fd: int) -> str:
    chunks = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def read_calls(calls_log: Path) -> list[MountCall]:
    if not calls_log.exists():
        return []
    return [MountCall(**json.loads(line)) for line in calls_log.read_text().splitlines() if line]


async def _serve(stand_in: KernelStandIn) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    await stand_in.start()
    (stand_in.socket_dir / "ready").touch()
    try:
        await stop.wait()
    finally:
        await stand_in.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.datapath.kernel``: serve until SIGTERM, then unmount nothing but stop
    every FUSE server still running (by pid)."""
    parser = argparse.ArgumentParser(prog="python -m testbed.datapath.kernel")
    parser.add_argument("--socket-dir", type=Path, required=True)
    parser.add_argument("--export", type=Path, required=True)
    parser.add_argument("--no-linger", type=Path, required=True)
    parser.add_argument("--hang", action="append", default=[],
                        help="a mount whose target contains this never gets an answer")
    parser.add_argument("--calls-log", type=Path, required=True)
    args = parser.parse_args(argv)
    stand_in = KernelStandIn(args.socket_dir, args.export, args.no_linger,
                             hang=set(args.hang), calls_log=args.calls_log)
    asyncio.run(_serve(stand_in))
    return 0


if __name__ == "__main__":
    sys.exit(main())
