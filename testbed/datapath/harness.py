"""The production data path, put together: the node image run as the chart runs it, in front of
the real efs-utils, in a loopback-only network namespace with the mount target inside.

    Sandbox (loopback only: 127.0.0.1-4)
      node container (the built image; the chart's user, privileges, volumes, args)
        efs-csi-node --mount-backend efs -> mount -t efs -> mount.efs (efs-utils 3.2.0)
          -> efs-proxy 127.0.0.1:PORT --TLS--> 127.0.0.3:2049 splitter -> stunnel -> ganesha
          -> /sbin/mount.nfs4 = the kernel stand-in's shim (testbed.datapath.kernel)
        amazon-efs-mount-watchdog, supervised by the node
      ganesha 127.0.0.2:2050, stunnel 127.0.0.3:2051 and 127.0.0.4:2049 (wrong certificate),
      the splitter 127.0.0.3:2049 (host processes in the sandbox's network namespace)

Only the kernel's NFS mount is stood in for. The kubelet directory is a shared mount in the
Docker engine's namespace, mapped with the chart's Bidirectional propagation, so staged mounts
survive a restart of the node container as they do on a node. ``DataPath.start`` records how
long each part took (``timings``); ``stop`` stops everything it started, by pid or container.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # no stubs in the dev group

from testbed.datapath.kernel import SHIM, SOCKET_DIR_IN_CONTAINER, MountCall, read_calls
from testbed.datapath.libnfs import Libnfs, no_linger_library
from testbed.datapath.pod import Container, Sandbox
from testbed.datapath.servers import MOUNT_TARGET, MountTargetServers
from testbed.datapath.tls import dns_name, make_ca
from testbed.images import Engine
from testbed.pods import container, docker_command, docker_run_options, hosts_file, pod_spec

FILE_SYSTEM = "fs-12345678"
OTHER_FILE_SYSTEM = "fs-87654321"
REGION = "us-east-1"
ZONE = "us-east-1a"
CA_IN_CONTAINER = "/etc/efs-csi-test-ca"
HANG_MARKER = "never-answers"  # a staging path holding this: mount.nfs4 gets no answer
REPO = Path(__file__).resolve().parents[2]


def node_values(kubelet: Path, *, mount_timeout: int = 20, grace_s: int = 5,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Chart values for the node under test: the local CA, no readahead tuning (it writes to
    /sys), a short unmount grace period, the file system's name pinned to the mount target
    (hostAliases, as for cross-VPC mounts: there is no DNS here), debug logs."""
    values: dict[str, Any] = {
        "region": REGION,
        "debugLogs": True,
        "node": {
            "kubeletPath": str(kubelet),
            "mountTimeout": mount_timeout,
            "efsUtilsConfOverrides": {
                "mount": {"stunnel_cafile": f"{CA_IN_CONTAINER}/ca.pem",
                          "optimize_readahead": "false"},
                "mount-watchdog": {"unmount_grace_period_sec": grace_s},
            },
            "hostAliases": {FILE_SYSTEM: {"ip": MOUNT_TARGET[0], "region": REGION}},
            # The mount target's certificate comes from the test's own CA, so the CA file is
            # overridden: an override the node refuses unless the operator allows it. The
            # plaintext case (encryptInTransit "false") is allowed by name the same way.
            "allowInsecureEfsUtilsConf": True,
            "allowInsecureMountOptions": ["notls"],
        },
    }
    for key, value in (extra or {}).items():
        values["node"][key] = value
    return values


def render_node(helm: str, values: dict[str, Any], values_file: Path) -> list[dict[str, Any]]:
    """``helm template`` of the chart with these values (real helm)."""
    values_file.write_text(yaml.safe_dump(values))
    result = subprocess.run([helm, "template", "efs-csi", str(REPO / "helm"), "--namespace",
                             "kube-system", "--kube-version", "1.30.0", "--values",
                             str(values_file)], capture_output=True, text=True, check=False,
                            timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@dataclass
class DataPath:
    engine: Engine
    work: Path
    manifests: list[dict[str, Any]]
    kubelet: Path
    timings: dict[str, float] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    with_node: bool = True  # False: the mount target alone, for another driver container
    file_system: str = FILE_SYSTEM  # the mount target's certificate names it
    sandbox: Sandbox | None = None
    servers: MountTargetServers | None = None
    node: Container | None = None
    _kernel: subprocess.Popen[bytes] | None = None
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    # --- paths on the host ------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:  # the chart's /var/run/efs hostPath
        return self.work / "efs-state"

    @property
    def config_dir(self) -> Path:  # /var/amazon/efs
        return self.work / "efs-config"

    @property
    def efs_logs(self) -> Path:  # /var/log/amazon/efs
        return self.work / "efs-logs"

    @property
    def socket(self) -> Path:
        return self.work / "plugin" / "csi.sock"

    @property
    def export(self) -> Path:
        return self.work / "export"

    @property
    def calls_log(self) -> Path:
        return self.work / "kernel" / "calls.jsonl"

    def calls(self) -> list[MountCall]:
        return read_calls(self.calls_log)

    def libnfs(self) -> Libnfs:
        assert self.sandbox is not None
        return Libnfs(self.sandbox.pid, self.work / "lib" / "no-linger.so")

    def _timed(self, name: str, step: Callable[[], Any]) -> Any:
        begin = time.monotonic()
        result = step()
        self.timings[name] = round(time.monotonic() - begin, 2)
        return result

    # --- start and stop -----------------------------------------------------------------------
    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        for directory in (self.state_dir, self.config_dir, self.efs_logs, self.socket.parent,
                          self.work / "efs-legacy", self.work / "kernel", self.export):
            directory.mkdir(parents=True, exist_ok=True)
        good, wrong = dns_name(self.file_system, REGION), dns_name(OTHER_FILE_SYSTEM, REGION)
        ca = self._timed("local_ca", lambda: make_ca(self.work / "ca", [good, wrong]))
        no_linger = no_linger_library(self.work / "lib")
        self.sandbox = Sandbox(self.engine, f"efs-csi-dp-sandbox-{self.suffix}",
                               self.engine.image("node"))
        self._stack.callback(self.sandbox.remove)
        self._timed("sandbox", self.sandbox.start)
        self.servers = MountTargetServers(self.sandbox.pid, self.work, ca, good, wrong)
        self._stack.callback(self.servers.stop)
        self._timed("mount_target", self.servers.start)
        self.timings.update(self.servers.timings)
        self._timed("kernel_stand_in", lambda: self._start_kernel(no_linger))
        if not self.with_node:
            return
        self._stack.enter_context(self.engine.shared_directory(self.kubelet))
        self.node = self._node_container(self.suffix)
        self._stack.callback(self.node.remove)
        self._timed("node_start", self.start_node)

    def relay_into_sandbox(self, host_port: int, sandbox_port: int) -> None:
        """127.0.0.1:``sandbox_port`` inside the sandbox reaches 127.0.0.1:``host_port`` of
        the host (a service of the test, such as moto), through a unix socket."""
        assert self.servers is not None
        socket = self.work / f"relay-{host_port}.sock"
        with (self.work / "logs" / f"relay-{host_port}.out").open("wb") as log:
            host_side = subprocess.Popen(
                [sys.executable, "-m", "testbed.datapath.relay", "unix-to-tcp", str(socket),
                 f"127.0.0.1:{host_port}"], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)})

        def stop_host_side() -> None:
            host_side.terminate()
            host_side.wait(timeout=10)

        self._stack.callback(stop_host_side)
        deadline = time.monotonic() + 30
        while not socket.exists():
            if time.monotonic() > deadline or host_side.poll() is not None:
                raise RuntimeError("the host side of the relay did not start")
            time.sleep(0.05)
        self.servers.start_relay(sandbox_port, socket)

    def driver_container(self, manifests: list[dict[str, Any]], kind: str, name: str,
                         host_dirs: dict[str, str], extra: list[str],
                         args: list[str], hosts: str | None = None) -> Container:
        """A driver container as its rendered pod runs it, in the sandbox, with the one fake
        (the mount.nfs4 shim) and the local CA."""
        assert self.sandbox is not None
        spec = pod_spec(manifests, kind, name)
        plugin = container(spec, "efs-plugin")
        fields = {"spec.nodeName": "datapath-node", "status.podIP": "127.0.0.1"}
        options = docker_run_options(spec, plugin, field_values=fields, host_dirs=host_dirs,
                                     propagation=True)
        shim = self.work / "kernel" / "mount.nfs4"
        shim.write_text(SHIM)
        shim.chmod(0o755)
        hosts_path = self.work / f"hosts-{name}"
        hosts_path.write_text(hosts if hosts is not None else hosts_file(spec))
        options += ["--network", self.sandbox.network,
                    "-e", "AWS_EC2_METADATA_DISABLED=true",
                    "-v", f"{hosts_path}:/etc/hosts:ro",
                    "-v", f"{self.work / 'ca'}:{CA_IN_CONTAINER}:ro",
                    "-v", f"{shim}:/usr/sbin/mount.nfs4:ro",
                    "-v", f"{self.work / 'kernel'}:{SOCKET_DIR_IN_CONTAINER}", *extra]
        image = plugin["image"].rsplit("/", 1)[-1].split(":")[0]
        return Container(self.engine, f"efs-csi-dp-{name}-{self.suffix}",
                         f"{image}:{self.engine.image('node').split(':')[1]}", options,
                         [*docker_command(plugin, fields), *args])

    def _start_kernel(self, no_linger: Path) -> None:
        directory = self.work / "kernel"
        with (directory / "kernel.log").open("wb") as log:
            self._kernel = subprocess.Popen(
                [sys.executable, "-m", "testbed.datapath.kernel", "--socket-dir",
                 str(directory), "--export", str(self.export), "--no-linger", str(no_linger),
                 "--hang", HANG_MARKER, "--calls-log", str(self.calls_log)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        self._stack.callback(self._stop_kernel)
        deadline = time.monotonic() + 30
        while not (directory / "ready").exists():
            if self._kernel.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the kernel stand-in did not start:\n"
                                   + (directory / "kernel.log").read_text(errors="replace"))
            time.sleep(0.05)

    def _stop_kernel(self) -> None:
        process, self._kernel = self._kernel, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _node_container(self, suffix: str) -> Container:
        host_dirs = {str(self.kubelet): str(self.kubelet),
                     "/csi": str(self.socket.parent),
                     "/var/run/efs": str(self.state_dir),
                     "/var/amazon/efs": str(self.config_dir),
                     "/etc/amazon/efs-legacy": str(self.work / "efs-legacy")}
        return self.driver_container(
            self.manifests, "DaemonSet", "efs-csi-node", host_dirs,
            ["-v", f"{self.efs_logs}:/var/log/amazon/efs"], [f"--availability-zone={ZONE}"])

    def start_node(self) -> None:
        """Start the node container (again, after a kill: same container and volumes) and
        wait for its CSI socket."""
        assert self.node is not None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        if self.node.running() or not self._exists():
            self.node.start()
        else:
            self.node.start_again()
        deadline = time.monotonic() + 60
        while not self.socket.exists():
            if time.monotonic() > deadline or not self.node.running():
                raise RuntimeError(f"the node did not serve:\n{self.node.logs()[-4000:]}")
            time.sleep(0.1)

    def _exists(self) -> bool:
        assert self.node is not None
        return self.engine.docker("inspect", self.node.name, check=False).returncode == 0

    def stop(self) -> None:
        self._stack.close()
