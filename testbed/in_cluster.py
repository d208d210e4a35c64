"""Run one of our binaries the way a pod sees the world, for a binary that finds the Kubernetes
API in-cluster (the service account's files at a fixed path), without a container runtime.

Root only (a mount namespace). The cluster tests run the chart's pods this way
(tests/support/deployment.py), and so do the node's start-up tests and benchmark, against a
fake API (testbed/kube_api.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

SERVICE_ACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def service_account_files(directory: Path, token: str, ca_certificate: Path) -> Path:
    """``directory`` laid out like a pod's service-account mount (token, CA, namespace)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(ca_certificate.read_bytes())
    (directory / "namespace").write_text("kube-system")
    return directory


def in_cluster_environment(port: int) -> dict[str, str]:
    """What kubelet puts in every pod's environment to find the API server (on loopback)."""
    return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port)}


def pod_command(argv: Sequence[str], service_account_files: Path, *,
                wait_for_go: bool = False) -> list[str]:
    """``argv`` run as a pod would see the world, for a binary that finds the API in-cluster.

    The command gets its own mount namespace. In it the filesystem holding ``/run`` is made
    private (so nothing mounted there reaches the host), a small tmpfs covers ``/run``, and the
    service account's files are copied to the fixed in-cluster path. All other mounts keep
    their propagation, so what the binary mounts under kubelet's shared root directory is seen
    by kubelet and the host, as with a DaemonSet's ``mountPropagation: Bidirectional``.
    ``exec`` keeps the pid: stopping the returned process stops the binary itself. With
    ``wait_for_go`` the pod is made, then one line is read from stdin before the binary is
    ``exec``ed: a benchmark times the binary from its exec, not the pod's making.
    """
    script = (
        'set -e; mount --make-private "$(findmnt -n -o TARGET -T /run)"; '
        "mount -t tmpfs -o size=4m,mode=0755 efs-csi-pod-run /run; "
        f"mkdir -p {SERVICE_ACCOUNT_PATH}; "
        f'cp "$0"/token "$0"/ca.crt "$0"/namespace {SERVICE_ACCOUNT_PATH}/; '
        + ("read go; " if wait_for_go else "")
        + 'exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "unchanged", "--",
            "/bin/sh", "-c", script, str(service_account_files), *argv]
