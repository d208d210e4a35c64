"""The far side of the data path, in a loopback-only network namespace: nfs-ganesha (the NFSv4
server), stunnel4 (the TLS "mount target" with a certificate from the local CA), and the
splitter that gives the mount target's port 2049 to both TLS and plain NFS
(``testbed.datapath.front``).

Addresses, all on ``lo`` of that namespace (glibc's AI_ADDRCONFIG ignores 127.0.0.1 alone, and
ganesha resolves its bind address with it, so extra loopback addresses are added):

- ``SERVER``  127.0.0.2:2050  ganesha (4.3 listens on ``[::]:2050`` whatever Bind_Addr says,
  which is why it cannot share 2049 with the front)
- ``MOUNT_TARGET`` 127.0.0.3:2049  the splitter; TLS goes on to stunnel at 127.0.0.3:2051
- ``WRONG_TARGET`` 127.0.0.4:2049  stunnel with a certificate for another file system

Each server is a process started here (``nsenter --net``, which execs it: the pid is the
server's), stopped by that pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from testbed.datapath.tls import LocalCa

SERVER = ("127.0.0.2", 2050)
MOUNT_TARGET = ("127.0.0.3", 2049)
TLS_FRONT = ("127.0.0.3", 2051)
WRONG_TARGET = ("127.0.0.4", 2049)
ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
REPO = Path(__file__).resolve().parents[2]


def ganesha_conf(export: Path, recovery: Path, plugins: Path) -> str:
    """NFSv4 only (no NLM, RQUOTA, UDP, rpcbind), VFS back end, the export at pseudo path /.
    NFSv4.0 too: libnfs 4.0 speaks no later version; the kernel client would use 4.1."""
    return f"""NFS_CORE_PARAM {{
    Protocols = 4;
    Bind_Addr = {SERVER[0]};
    NFS_Port = {SERVER[1]};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Plugins_Dir = {plugins};
}}
NFSV4 {{
    Minor_Versions = 0, 1, 2;
    Graceless = true;
    Lease_Lifetime = 30;
    RecoveryBackend = fs;
    RecoveryRoot = "{recovery}";
    Allow_Numeric_Owners = true;
    Only_Numeric_Owners = true;
}}
EXPORT {{
    Export_Id = 1;
    Path = "{export}";
    Pseudo = /;
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 4;
    Transports = TCP;
    SecType = sys;
    FSAL {{ Name = VFS; }}
}}
NFS_KRB5 {{
    Active_krb5 = false;
}}
LOG {{
    Default_Log_Level = EVENT;
}}
"""


def stunnel_conf(accept: tuple[str, int], connect: tuple[str, int], cert: Path, key: Path,
                 log: Path) -> str:
    return (f"foreground = yes\npid =\noutput = {log}\ndebug = info\n"
            f"[efs-mount-target]\naccept = {accept[0]}:{accept[1]}\n"
            f"connect = {connect[0]}:{connect[1]}\ncert = {cert}\nkey = {key}\n")


def _ganesha_plugins() -> Path:
    listing = subprocess.run(["dpkg", "-L", "nfs-ganesha-vfs"], capture_output=True, text=True,
                             check=True).stdout
    library = next(line for line in listing.splitlines() if line.endswith("/libfsalvfs.so"))
    return Path(library).parent


def in_netns(pid: int, *command: str) -> list[str]:
    return ["nsenter", f"--net=/proc/{pid}/ns/net", *command]


def listening(pid: int, address: tuple[str, int]) -> bool:
    probe = f"exec 3<>/dev/tcp/{address[0]}/{address[1]}"
    return subprocess.run(in_netns(pid, "bash", "-c", probe), capture_output=True,
                          check=False, timeout=10).returncode == 0


@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@dataclass
class MountTargetServers:
    """Start with ``start``; ``stop`` stops every process it started, by pid."""

    netns_pid: int
    work: Path
    ca: LocalCa
    good_name: str
    wrong_name: str
    started: list[Started] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def export(self) -> Path:
        return self.work / "export"

    def _start(self, name: str, *command: str) -> Started:
        log = self.work / "logs" / f"{name}.out"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as output:
            process = subprocess.Popen(in_netns(self.netns_pid, *command), stdout=output,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=REPO,
                                       env={**os.environ, "PYTHONPATH": str(REPO)})
        started = Started(name, process, log)
        self.started.append(started)
        return started

    def _wait(self, started: Started, address: tuple[str, int], timeout: float = 60) -> None:
        begin = time.monotonic()
        while not listening(self.netns_pid, address):
            if started.process.poll() is not None or time.monotonic() - begin > timeout:
                raise RuntimeError(f"{started.name} does not listen on {address}:\n"
                                   f"{started.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        self.timings[f"{started.name}_listen_s"] = round(time.monotonic() - begin, 2)

    def start(self) -> None:
        for address in ADDRESSES:
            subprocess.run(in_netns(self.netns_pid, "ip", "addr", "add", f"{address}/32",
                                    "dev", "lo"), check=True, capture_output=True, timeout=10)
        (self.work / "ganesha" / "recovery").mkdir(parents=True, exist_ok=True)
        self.export.mkdir(parents=True, exist_ok=True)
        conf = self.work / "ganesha" / "ganesha.conf"
        conf.write_text(ganesha_conf(self.export, self.work / "ganesha" / "recovery",
                                     _ganesha_plugins()))
        logs = self.work / "logs"
        ganesha = self._start("ganesha", "ganesha.nfsd", "-F", "-f", str(conf),
                              "-L", str(logs / "ganesha.log"),
                              "-p", str(self.work / "ganesha" / "ganesha.pid"), "-N", "NIV_EVENT")
        fronts = []
        for name, accept, certificate in (
                ("stunnel-front", TLS_FRONT, self.ca.certificates[self.good_name]),
                ("stunnel-wrong", WRONG_TARGET, self.ca.certificates[self.wrong_name])):
            path = self.work / f"{name}.conf"
            path.write_text(stunnel_conf(accept, SERVER, certificate.cert, certificate.key,
                                         logs / f"{name}.log"))
            fronts.append((self._start(name, "stunnel", str(path)), accept))
        splitter = self._start("splitter", sys.executable, "-m", "testbed.datapath.front",
                               "{}:{}".format(*MOUNT_TARGET), "{}:{}".format(*TLS_FRONT),
                               "{}:{}".format(*SERVER))
        self._wait(ganesha, SERVER)
        for started, accept in fronts:
            self._wait(started, accept)
        self._wait(splitter, MOUNT_TARGET)

    def start_relay(self, port: int, socket: Path) -> None:
        """127.0.0.1:``port`` in the namespace, relayed to a unix socket (testbed.datapath.
        relay): how a service of the test on the host's loopback is reached from inside."""
        relay = self._start(f"relay-{port}", sys.executable, "-m", "testbed.datapath.relay",
                            "tcp-to-unix", f"127.0.0.1:{port}", str(socket))
        self._wait(relay, ("127.0.0.1", port))

    def stop(self) -> None:
        for started in reversed(self.started):
            started.stop()
        self.started.clear()
