"""A real Kubernetes on loopback for the cluster tests: etcd, kube-apiserver,
kube-controller-manager and, per test node, a kubelet.

The binaries are the real ones, built from the Go module proxy by
``scripts/build-cluster-tools.sh`` into ``.tools/bin`` (``make cluster-tools``); without them the
tests skip on a laptop and fail under CI. Everything listens on 127.0.0.1, on ports picked free
at start, and every process is stopped by the pid this module started.

- ``ControlPlane``: etcd, then kube-apiserver (RBAC, a service-account signing key so the
  TokenRequest API works, ``--allow-privileged`` for the node DaemonSet, an audit log of every
  request's outcome), then kube-controller-manager with only the controllers a storage test needs
  (PV binder, PV/PVC protection, service accounts and their root CA ConfigMap, namespaces).
  The admin is a static token in ``system:masters``.
- ``Kubelet``: a real kubelet whose container runtime is ``fakecri`` (Kubernetes' own in-memory
  CRI fake, so pods "run" without containers while kubelet's volume manager stages and publishes
  their CSI volumes for real) and whose CSI driver registration is done by ``registrar`` (the
  stand-in for node-driver-registrar, which the module proxy does not serve). A kubelet rewrites
  kernel settings at start; ``KernelSettings`` records them first and puts them back.
Our binaries run in it the way a pod would see the world through ``testbed.in_cluster``.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.ci import REPO, skip_or_fail
from tests.support.mounts import mount_points_under

Json = dict[str, Any]

TOOL_NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubelet", "kubectl",
              "fakecri", "registrar", "csi-provisioner")


@dataclass(frozen=True)
class ClusterTools:
    """Paths of the built binaries (``$EFS_CSI_CLUSTER_TOOLS``, default ``.tools/bin``)."""

    bin_dir: Path

    @classmethod
    def find(cls) -> ClusterTools:
        bin_dir = Path(os.environ.get("EFS_CSI_CLUSTER_TOOLS", REPO / ".tools" / "bin"))
        missing = [name for name in TOOL_NAMES if not os.access(bin_dir / name, os.X_OK)]
        if missing:
            skip_or_fail(f"cluster tools missing in {bin_dir}: {', '.join(missing)} "
                         "(`make cluster-tools` builds them with Go)")
        if shutil.which("unshare") is None or shutil.which("findmnt") is None:
            skip_or_fail("util-linux's unshare and findmnt are needed")
        if os.geteuid() != 0:
            skip_or_fail("a kubelet and pod mount namespaces need root")
        return cls(bin_dir)

    def __getitem__(self, name: str) -> str:
        return str(self.bin_dir / name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(what: str, condition: Callable[[], object], timeout: float,
               interval: float = 0.1, diagnose: Callable[[], str] | None = None) -> Any:
    """Poll ``condition`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f"\n{diagnose()}" if diagnose else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


class Daemon:
    """A long-running process this harness started; stopped by its pid, never by name."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self._env = dict(env) if env is not None else None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, env=self._env)
        return self

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return f"--- last lines of {self.log_path} ---\n" + \
            "\n".join(self.logs().splitlines()[-lines:])

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> int | None:
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(sig)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        return self._process.returncode


# --- certificates and keys ------------------------------------------------------------------

def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey,
                 issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
                 server: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(issuer[0].subject if issuer else name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2)))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc")]), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    signer = issuer[1] if issuer else key
    return builder.sign(signer, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    """A CA, the API server's serving certificate, the service-account key pair, an admin token."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @classmethod
    def create(cls, directory: Path) -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _certificate("efs-csi-test-ca", ca_key, None, server=False)
        serving_key = ec.generate_private_key(ec.SECP256R1())
        serving = _certificate("kube-apiserver", serving_key, (ca, ca_key), server=True)
        sa_key = ec.generate_private_key(ec.SECP256R1())
        files = {
            "ca.crt": ca.public_bytes(serialization.Encoding.PEM),
            "ca.key": _pem_key(ca_key),
            "apiserver.crt": serving.public_bytes(serialization.Encoding.PEM),
            "apiserver.key": _pem_key(serving_key),
            "sa.key": _pem_key(sa_key),
            "sa.pub": sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        }
        token = secrets.token_urlsafe(24)
        files["tokens.csv"] = f"{token},admin,admin-uid,system:masters\n".encode()
        files["admin.token"] = token.encode()
        for name, content in files.items():
            path = directory / name
            path.write_bytes(content)
            path.chmod(0o600)
        return cls(directory)

    def file(self, name: str) -> str:
        return str(self.directory / name)

    @property
    def admin_token(self) -> str:
        return (self.directory / "admin.token").read_text()


def write_kubeconfig(path: Path, server: str, ca: Path, token: str, user: str) -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "local",
        "clusters": [{"name": "local", "cluster": {"server": server,
                                                   "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
    }
    path.write_text(json.dumps(config, indent=1))
    path.chmod(0o600)
    return path


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
"""

# Only what storage tests need: binding claims to volumes, the protection finalizers, service
# accounts with their tokens and the kube-root-ca.crt ConfigMap pods mount, namespace deletion.
CONTROLLERS = ",".join([
    "persistentvolume-binder-controller", "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller", "serviceaccount-token-controller",
    "serviceaccount-controller", "namespace-controller",
    "root-ca-certificate-publisher-controller",
])


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager, on loopback, under ``workdir``."""

    def __init__(self, workdir: Path, tools: ClusterTools) -> None:
        self.workdir = workdir
        self.tools = tools
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pki = Pki.create(workdir / "pki")
        self.etcd_port, self.etcd_peer_port, self.port = free_port(), free_port(), free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.audit_log = self.logs / "audit.log"
        self.admin_kubeconfig = write_kubeconfig(workdir / "admin.kubeconfig", self.server,
                                                 self.pki.ca, self.pki.admin_token, "admin")
        (workdir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        self._ssl = ssl.create_default_context(cafile=str(self.pki.ca))
        self.etcd = Daemon("etcd", self._etcd_argv(), self.logs)
        self.apiserver = Daemon("kube-apiserver", self._apiserver_argv(), self.logs)
        self.controller_manager = Daemon("kube-controller-manager", self._kcm_argv(), self.logs)
        self.start_seconds: float | None = None

    def _etcd_argv(self) -> list[str]:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        return [self.tools["etcd"], "--name", "default", "--data-dir", str(self.workdir / "etcd"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"default={peer}", "--listen-metrics-urls", "",
                "--unsafe-no-fsync", "--log-level", "warn"]

    def _apiserver_argv(self) -> list[str]:
        pki = self.pki.file
        return [
            self.tools["kube-apiserver"],
            "--etcd-servers", f"http://127.0.0.1:{self.etcd_port}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(self.port),
            "--tls-cert-file", pki("apiserver.crt"), "--tls-private-key-file", pki("apiserver.key"),
            "--client-ca-file", pki("ca.crt"), "--token-auth-file", pki("tokens.csv"),
            "--authorization-mode", "Node,RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", pki("sa.pub"),
            "--service-account-signing-key-file", pki("sa.key"),
            "--service-cluster-ip-range", "10.0.0.0/24",
            # The "kubernetes" Endpoints may not hold a loopback address.
            "--endpoint-reconciler-type", "none",
            # The chart's node DaemonSet is privileged, as kubeadm, kind and EKS allow.
            "--allow-privileged=true",
            "--audit-policy-file", str(self.workdir / "audit-policy.yaml"),
            "--audit-log-path", str(self.audit_log), "--audit-log-mode", "blocking",
            "--profiling=false", "--v=1",
        ]

    def _kcm_argv(self) -> list[str]:
        return [self.tools["kube-controller-manager"],
                "--kubeconfig", str(self.admin_kubeconfig),
                "--bind-address", "127.0.0.1", "--secure-port", "0",
                "--controllers", CONTROLLERS,
                "--service-account-private-key-file", self.pki.file("sa.key"),
                "--root-ca-file", self.pki.file("ca.crt"),
                "--use-service-account-credentials=false", "--leader-elect=false", "--v=1"]

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        began = time.monotonic()
        try:
            self.etcd.start()
            wait_until("etcd", self._etcd_healthy, 60, diagnose=self.etcd.log_tail)
            self.start_apiserver()
            self.controller_manager.start()
            wait_until("kube-controller-manager (the default ServiceAccount)",
                       lambda: self.kubectl("-n", "default", "get", "serviceaccount", "default",
                                            check=False).returncode == 0,
                       90, interval=0.2, diagnose=self.controller_manager.log_tail)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def start_apiserver(self) -> None:
        self.apiserver.start()
        wait_until("kube-apiserver /readyz", self.ready, 120, interval=0.2,
                   diagnose=self.apiserver.log_tail)

    def stop_apiserver(self) -> None:
        """The API server dies (SIGKILL): connections drop, new ones are refused."""
        self.apiserver.stop(sig=signal.SIGKILL)
        self.apiserver = Daemon("kube-apiserver", self._apiserver_argv(), self.logs)

    def restart_apiserver(self, downtime: float = 0.0) -> None:
        """The API server dies and is back after ``downtime`` seconds (and its start-up)."""
        self.stop_apiserver()
        time.sleep(downtime)
        self.start_apiserver()

    def stop(self) -> None:
        # kube-apiserver can take 20 s to finish its graceful termination; nothing is kept.
        for daemon in (self.controller_manager, self.apiserver, self.etcd):
            daemon.stop(timeout=5)

    # --- talking to it -----------------------------------------------------------------------

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health",
                                        timeout=2) as reply:
                return bool(json.load(reply).get("health") == "true")
        except (OSError, ValueError):
            return False

    def ready(self) -> bool:
        request = urllib.request.Request(f"{self.server}/readyz", headers={
            "Authorization": f"Bearer {self.pki.admin_token}"})
        try:
            with urllib.request.urlopen(request, timeout=2, context=self._ssl) as reply:
                return bool(reply.status == 200)
        except (OSError, urllib.error.HTTPError):
            return False

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                kubeconfig: Path | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = [self.tools["kubectl"], "--kubeconfig", str(kubeconfig or self.admin_kubeconfig),
                *args]
        result = subprocess.run(argv, input=input, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stderr}{result.stdout}")
        return result

    def get(self, kind: str, name: str = "", namespace: str | None = None) -> Json:
        """One object (or a List when ``name`` is empty) as JSON."""
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        if namespace:
            args[1:1] = ["-n", namespace]
        return json.loads(self.kubectl(*args).stdout)  # type: ignore[no-any-return]

    def find(self, kind: str, name: str, namespace: str | None = None) -> Json | None:
        """The object, or None when the API says it does not exist."""
        args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
        if namespace:
            args[1:1] = ["-n", namespace]
        out = self.kubectl(*args).stdout.strip()
        return json.loads(out) if out else None

    def raw(self, path: str) -> Json:
        """GET an API path as the server serves it (no client-side defaulting)."""
        return json.loads(self.kubectl("get", "--raw", path).stdout)  # type: ignore[no-any-return]

    def apply(self, manifests: str | Iterable[Json], *, server_side: bool = False) -> None:
        text = manifests if isinstance(manifests, str) else \
            "\n".join(json.dumps(manifest) for manifest in manifests)
        args = ["apply", "-f", "-"] + (["--server-side"] if server_side else [])
        self.kubectl(*args, input=text)

    def create_token(self, namespace: str, service_account: str,
                     duration: str = "2h") -> str:
        return self.kubectl("-n", namespace, "create", "token", service_account,
                            "--duration", duration).stdout.strip()

    def service_account_kubeconfig(self, namespace: str, service_account: str) -> Path:
        """A kubeconfig that authenticates as the ServiceAccount (a TokenRequest token)."""
        token = self.create_token(namespace, service_account)
        return write_kubeconfig(self.workdir / f"{namespace}.{service_account}.kubeconfig",
                                self.server, self.pki.ca, token,
                                f"system:serviceaccount:{namespace}:{service_account}")

    def service_account_files(self, namespace: str, service_account: str) -> Path:
        """A directory laid out like a pod's ``/var/run/secrets/kubernetes.io/serviceaccount``."""
        directory = self.workdir / "serviceaccounts" / f"{namespace}.{service_account}"
        if (directory / "token").exists():  # made earlier this session; valid for hours
            return directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "token").write_text(self.create_token(namespace, service_account))
        shutil.copyfile(self.pki.ca, directory / "ca.crt")
        (directory / "namespace").write_text(namespace)
        return directory

    def node_pod_service_account_files(self, namespace: str, service_account: str,
                                       node_name: str) -> Path:
        """Like ``service_account_files``, but the token is bound to a pod on ``node_name``,
        as the tokens kubelet projects into a DaemonSet's pods are: the API server then puts
        the node's name in the token's user info (``authentication.kubernetes.io/node-name``),
        which the chart's node policy checks. No DaemonSet controller runs here, so the pod is
        a stand-in object (``node_pod_name``), which this node's kubelet runs on fakecri.
        Made once per node until ``forget_node_pod`` (like ``service_account_files``, so a
        test can issue it before an outage)."""
        pod_name = self.node_pod_name(service_account, node_name)
        directory = self.workdir / "serviceaccounts" / f"{namespace}.{pod_name}"
        if (directory / "token").exists():
            return directory
        self.apply([{
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": namespace,
                         "labels": {"efs-csi.test/stand-in": "node-pod"}},
            "spec": {"nodeName": node_name, "serviceAccountName": service_account,
                     "automountServiceAccountToken": False,
                     "terminationGracePeriodSeconds": 0,
                     "tolerations": [{"operator": "Exists"}],
                     "containers": [{"name": "efs-plugin",
                                     "image": "registry.invalid/efs-csi-node:stand-in"}]}}])
        uid = self.get("pod", pod_name, namespace)["metadata"]["uid"]
        token = self.kubectl("-n", namespace, "create", "token", service_account,
                             "--duration", "2h", "--bound-object-kind", "Pod",
                             "--bound-object-name", pod_name,
                             "--bound-object-uid", uid).stdout.strip()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "token").write_text(token)
        shutil.copyfile(self.pki.ca, directory / "ca.crt")
        (directory / "namespace").write_text(namespace)
        return directory

    @staticmethod
    def node_pod_name(service_account: str, node_name: str) -> str:
        return f"{service_account}-{node_name}"[:63].rstrip("-.")

    def forget_node_pod(self, namespace: str, service_account: str, node_name: str) -> None:
        """Delete the stand-in pod (its token stops working with it) and the token's files."""
        pod_name = self.node_pod_name(service_account, node_name)
        self.kubectl("-n", namespace, "delete", "pod", "--ignore-not-found", "--force",
                     "--grace-period=0", "--wait=false", pod_name)
        shutil.rmtree(self.workdir / "serviceaccounts" / f"{namespace}.{pod_name}",
                      ignore_errors=True)

    def in_cluster_environment(self) -> dict[str, str]:
        """What kubelet puts in every pod's environment to find the API server."""
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}

    def version(self) -> str:
        return str(self.raw("/version")["gitVersion"])

    def audit_events(self) -> list[Json]:
        if not self.audit_log.exists():
            return []
        events = []
        for line in self.audit_log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return events


# --- kubelet ---------------------------------------------------------------------------------

# What a kubelet sets at start (its "kernel tunables"; protectKernelDefaults would make it
# refuse to start instead). They are global to the machine, so they are recorded and restored.
KUBELET_SYSCTLS = ("kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory",
                   "vm/panic_on_oom", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes")


@dataclass
class KernelSettings:
    """Records sysctl values and puts them back."""

    keys: Sequence[str] = KUBELET_SYSCTLS
    recorded: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def read(key: str) -> str:
        return Path("/proc/sys", key).read_text().strip()

    def record(self) -> None:
        self.recorded = {key: self.read(key) for key in self.keys}

    def changed(self) -> dict[str, tuple[str, str]]:
        """key -> (recorded, now) for every setting that differs from the record."""
        return {key: (value, self.read(key)) for key, value in self.recorded.items()
                if self.read(key) != value}

    def restore(self) -> dict[str, tuple[str, str]]:
        changed = self.changed()
        for key, (value, _now) in changed.items():
            Path("/proc/sys", key).write_text(value)
        return changed


KUBELET_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz_port}
authentication: {{anonymous: {{enabled: false}}, webhook: {{enabled: false}}}}
authorization: {{mode: AlwaysAllow}}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
containerRuntimeEndpoint: {cri}
imageServiceEndpoint: {cri}
registerNode: true
evictionHard: {{}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
"""


class Kubelet:
    """A real kubelet for one node, with ``fakecri`` as its runtime; root dir under ``workdir``."""

    def __init__(self, plane: ControlPlane, workdir: Path, node_name: str, *,
                 labels: Mapping[str, str] | None = None,
                 taints: Sequence[str] = ()) -> None:
        self.plane = plane
        self.node_name = node_name
        self.workdir = workdir
        self.root_dir = workdir / "kubelet"
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.root_dir.mkdir(parents=True, exist_ok=True)
        cri = f"unix://{workdir / 'cri.sock'}"
        config = workdir / "kubelet-config.yaml"
        config.write_text(KUBELET_CONFIG.format(port=free_port(), healthz_port=free_port(),
                                                cri=cri))
        label_arg = ",".join(f"{key}={value}" for key, value in (labels or {}).items())
        self.kernel = KernelSettings()
        self.fakecri = Daemon(f"fakecri-{node_name}", [plane.tools["fakecri"], cri], self.logs)
        self.kubelet = Daemon(f"kubelet-{node_name}", [
            plane.tools["kubelet"], "--config", str(config),
            "--kubeconfig", str(plane.admin_kubeconfig),
            "--root-dir", str(self.root_dir), "--cert-dir", str(workdir / "kubelet-pki"),
            "--hostname-override", node_name, "--node-ip", "127.0.0.1",
            *(["--node-labels", label_arg] if label_arg else []),
            *(["--register-with-taints", ",".join(taints)] if taints else []),
            "--v=2"], self.logs)
        self.sysctls_restored: dict[str, tuple[str, str]] = {}

    @property
    def plugins_registry(self) -> Path:
        return self.root_dir / "plugins_registry"

    def plugin_dir(self, driver: str) -> Path:
        return self.root_dir / "plugins" / driver

    def start(self) -> Kubelet:
        self.kernel.record()
        try:
            self.fakecri.start()
            self.kubelet.start()
            # The kubelet sets its tunables once, while its container manager starts; put them
            # back as soon as they move (and again at stop, should anything move them later).
            with contextlib.suppress(TimeoutError):
                wait_until("kubelet's kernel settings", self.kernel.changed, 30,
                           interval=0.05)
            self.sysctls_restored = self.kernel.restore()
            wait_until(f"node {self.node_name} Ready", self.ready, 120, interval=0.25,
                       diagnose=self.kubelet.log_tail)
        except BaseException:
            self.stop()
            raise
        return self

    def ready(self) -> bool:
        node = self.plane.find("node", self.node_name)
        if node is None:
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def mounts(self) -> list[str]:
        """Mount points under this kubelet's root dir (the root dir itself excluded)."""
        return [target for target in mount_points_under(self.root_dir)
                if Path(target) != self.root_dir]

    def stop(self) -> None:
        self.kubelet.stop()
        self.fakecri.stop()
        # kubelet bind-mounts its root dir onto itself (to make it shared) and leaves it.
        unmount_all_under(self.root_dir)
        self.sysctls_restored.update(self.kernel.restore())


def unmount_all_under(directory: Path) -> None:
    for _ in range(5):  # stacked mounts need one pass each
        targets = mount_points_under(directory)
        if not targets:
            return
        for target in targets:
            subprocess.run(["umount", target], capture_output=True, check=False)


@contextlib.contextmanager
def running(*daemons: Daemon) -> Iterator[None]:
    """Start the daemons, stop them (in reverse) however the block ends."""
    started: list[Daemon] = []
    try:
        for daemon in daemons:
            started.append(daemon.start())
        yield
    finally:
        for daemon in reversed(started):
            daemon.stop()
