"""What the kind run may change on the host, captured before and after it: kernel settings the
engine and the kind nodes' kubelets write, network interfaces, namespaces and firewall rules,
mounts and processes under the kind cache. After `kind-down` and the engine's stop, nothing of
it may differ."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# dockerd raises the keyring limits; every kind node's kubelet writes the other three (global,
# not per namespace); ip_forward would be the host's if the engine ran in its namespace.
SYSCTLS = ("kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "kernel.panic",
           "kernel.panic_on_oops", "vm.overcommit_memory", "net.ipv4.ip_forward")
ENGINE = Path(__file__).resolve().parents[2] / "scripts" / "kind" / "engine.sh"
_COUNTERS = re.compile(r"\[\d+:\d+\]")


def _run(*argv: str) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout


def _sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


@dataclass(frozen=True)
class HostState:
    sysctls: dict[str, str]
    links: frozenset[str]
    netns: frozenset[str]
    rules: tuple[str, ...]  # the host namespace's firewall tables, chains and rules
    mounts: tuple[str, ...]  # mount points under the marked paths
    processes: tuple[str, ...]  # command lines naming the marked paths
    lib_modules: bool
    kubelets: tuple[str, ...]  # kubelets running on the host (after the run: none of ours)

    @staticmethod
    def capture(marks: tuple[str, ...]) -> HostState:
        links = frozenset(line.split(":")[1].strip().split("@")[0]
                          for line in _run("ip", "-o", "link").splitlines() if ":" in line)
        netns = frozenset(line.split()[0] for line in _run("ip", "netns", "list").splitlines()
                          if line.strip())
        # The engine's own iptables reads them: the host may have none installed.
        rules = tuple(_COUNTERS.sub("", line) for line in _run(str(ENGINE), "host-rules")
                      .splitlines() if line.strip() and not line.startswith("#"))
        mounts = tuple(line.split()[4] for line in Path("/proc/self/mountinfo").read_text()
                       .splitlines() if any(mark in line for mark in marks))
        processes, kubelets = [], []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if any(mark in command for mark in marks):
                processes.append(f"{entry.name}: {command.strip()}")
            if Path(command.split(" ", 1)[0]).name == "kubelet":
                kubelets.append(f"{entry.name}: {command.strip()[:200]}")
        return HostState({name: _sysctl(name) for name in SYSCTLS}, links, netns, rules,
                         mounts, tuple(processes), Path("/lib/modules").exists(),
                         tuple(kubelets))
