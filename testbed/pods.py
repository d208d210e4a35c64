"""Run one container of a rendered pod with docker as kubelet would run it (the parts that
matter for these tests): the image, command and args, the user and group, privileged mode, a
read-only root file system, dropped capabilities, no privilege escalation, environment values,
and a fresh writable directory (tmpfs) for every volume the pod mounts unless the test maps a
host directory there. So an image is smoke-run with exactly the settings the chart gives it.

``privileged: true`` becomes every capability this machine's bounding set holds, with seccomp,
AppArmor and the masked /proc paths lifted: docker's own ``--privileged`` asks runc for every
capability, and a machine without one (this project's lack CAP_SYS_RESOURCE) refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

Manifest = dict[str, Any]


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    """The rendered object of this kind and name (as ``tests.chart.render.find``)."""
    for manifest in manifests:
        if manifest["kind"] == kind and manifest["metadata"]["name"] == name:
            return manifest
    raise AssertionError(f"no {kind} {name} rendered")

# Linux capability numbers (linux/capability.h), for reading the bounding set.
_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ")  # newer ones are unknown to docker 20.10


def _privileged_options() -> list[str]:
    status = dict(line.split(":", 1) for line in
                  Path("/proc/self/status").read_text().splitlines())
    bounding = int(status["CapBnd"].strip(), 16)
    options = ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
               "--security-opt", "systempaths=unconfined"]
    for number, name in enumerate(_CAPABILITIES):
        if bounding & (1 << number):
            options += ["--cap-add", name]
    return options


def pod_spec(manifests: list[Manifest], kind: str, name: str) -> dict[str, Any]:
    return find(manifests, kind, name)["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in spec["containers"] if c["name"] == name)


def run_as(spec: dict[str, Any], container_spec: dict[str, Any]) -> tuple[int | None, int | None]:
    """The uid and gid the container runs as: its securityContext, then the pod's."""
    pod = spec.get("securityContext") or {}
    own = container_spec.get("securityContext") or {}
    uid = own.get("runAsUser", pod.get("runAsUser"))
    gid = own.get("runAsGroup", pod.get("runAsGroup"))
    return uid, gid


# A volume mount's mountPropagation as a docker volume option. The host directory must be a
# shared mount in the engine's mount namespace (testbed.images.Engine.shared_directory).
_PROPAGATION = {"Bidirectional": ":rshared", "HostToContainer": ":rslave"}


def docker_run_options(spec: dict[str, Any], container_spec: dict[str, Any], *,
                       field_values: Mapping[str, str],
                       host_dirs: Mapping[str, str] | None = None,
                       propagation: bool = False) -> list[str]:
    """``docker run`` options (before the image) for this container of this pod.

    ``propagation``: mapped host directories keep the chart's mountPropagation."""
    options: list[str] = []
    uid, gid = run_as(spec, container_spec)
    pod_context = spec.get("securityContext") or {}
    context = container_spec.get("securityContext") or {}
    if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) and uid in (None, 0):
        raise AssertionError("runAsNonRoot without a non-root runAsUser: kubelet would refuse")
    if uid is not None:
        options += ["--user", f"{uid}:{gid if gid is not None else uid}"]
    if context.get("privileged"):
        options += _privileged_options()
    if context.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    for capability in (context.get("capabilities") or {}).get("drop", []):
        options += ["--cap-drop", capability]
    for capability in (context.get("capabilities") or {}).get("add", []):
        options += ["--cap-add", capability]
    if context.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    for item in container_spec.get("env", []):
        if "value" in item:
            options += ["-e", f"{item['name']}={item['value']}"]
        else:
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            options += ["-e", f"{item['name']}={field_values[path]}"]
    mapped = dict(host_dirs or {})
    for mount in container_spec.get("volumeMounts", []):
        path = mount["mountPath"]
        if path in mapped:
            mode = _PROPAGATION.get(mount.get("mountPropagation", ""), "") if propagation else ""
            options += ["-v", f"{mapped.pop(path)}:{path}{mode}"]
        else:
            options += ["--tmpfs", f"{path}:mode=1777,exec"]
    for path, host in mapped.items():  # directories the test adds (e.g. efs-utils' state)
        options += ["-v", f"{host}:{path}"]
    command = container_spec.get("command") or []
    if command:
        options += ["--entrypoint", command[0]]
    return options


def docker_command(container_spec: dict[str, Any],
                   field_values: Mapping[str, str]) -> list[str]:
    """What follows the image: the rest of the command, then the args, with $(VAR) expanded
    from the container's environment as kubelet expands it."""
    env = {}
    for item in container_spec.get("env", []):
        env[item["name"]] = item["value"] if "value" in item else field_values[
            item["valueFrom"]["fieldRef"]["fieldPath"]]
    command = list(container_spec.get("command") or [])
    words = command[1:] + list(container_spec.get("args") or [])
    for name, value in env.items():
        words = [word.replace(f"$({name})", value) for word in words]
    return words


def hosts_file(spec: dict[str, Any]) -> str:
    """/etc/hosts as kubelet writes it for the pod: localhost, then the pod's hostAliases."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    for alias in spec.get("hostAliases") or []:
        lines.append("\t".join([alias["ip"], *alias["hostnames"]]))
    return "\n".join(lines) + "\n"
