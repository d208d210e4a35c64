"""Every ``connect()`` of the processes under test, traced with strace.

The namespaces the data path runs in hold only loopback, so a connection elsewhere (instance
metadata at 169.254.169.254, a DNS server, an AWS endpoint) would fail anyway; the trace shows
that none was even tried. strace attaches to running processes (``-p``) and follows every
child they start from then on (``-f``): mount, mount.efs, efs-proxy, mount.nfs4, the watchdog.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

_INET = re.compile(r'sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
_INET6 = re.compile(r'sa_family=AF_INET6, sin6_port=htons\((\d+)\),'
                    r'.*?inet_pton\(AF_INET6, "([^"]+)"\)')


@dataclass(frozen=True)
class Connect:
    line: str
    address: str
    port: int

    @property
    def loopback(self) -> bool:
        address = ipaddress.ip_address(self.address)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback


def parse(text: str) -> list[Connect]:
    """The IP connects in strace's output (unix sockets and netlink are not network)."""
    found = []
    for line in text.splitlines():
        if "connect(" not in line:
            continue
        for pattern in (_INET, _INET6):
            match = pattern.search(line)
            if match:
                found.append(Connect(line, match.group(2), int(match.group(1))))
                break
    return found


class ConnectTrace:
    def __init__(self, output: Path) -> None:
        self.output = output
        self._process: subprocess.Popen[bytes] | None = None

    def attach(self, pids: list[int]) -> None:
        arguments = [item for pid in pids for item in ("-p", str(pid))]
        self._process = subprocess.Popen(
            ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(self.output), *arguments],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 10
        while not self.output.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # attaching to every thread of the processes takes a moment

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)  # strace detaches and exits
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def connects(self) -> list[Connect]:
        if not self.output.exists():
            return []
        return parse(self.output.read_text(errors="replace"))
