"""Run a container of a rendered workload as a local process, the way kubelet would start it.

The cluster tests have no container runtime, but they should run our binaries and the sidecars
with exactly the command, arguments and environment the chart renders. ``PodRunner`` takes a
container from a rendered Deployment or DaemonSet and gives back the command line to run here:

- ``$(VAR)`` references in the arguments are expanded from the container's environment, whose
  ``valueFrom.fieldRef`` entries (the pod's node name, namespace) are filled in as kubelet would;
- each volume mount becomes a directory of this machine: a ``hostPath`` volume maps through
  ``host_paths`` (e.g. ``/var/lib/kubelet`` to the test kubelet's root dir) or, if not listed
  there, to a scratch directory, never the real host path; an ``emptyDir`` is a scratch
  directory shared by the pod's containers. Arguments naming a path inside a mount are
  rewritten to the directory it maps to, and so are host paths passed as arguments;
- the image's program is replaced by its local build (``programs``), dropping an init such as
  ``tini -g --`` in front of it (there is no PID namespace to reap).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Json = dict[str, Any]


def pod_spec(workload: Json) -> Json:
    return workload["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container(workload: Json, name: str) -> Json:
    for candidate in pod_spec(workload)["containers"]:
        if candidate["name"] == name:
            return candidate  # type: ignore[no-any-return]
    raise AssertionError(f"{workload['kind']} {workload['metadata']['name']} has no "
                         f"container {name}")


@dataclass(frozen=True)
class LocalContainer:
    argv: list[str]
    env: dict[str, str]
    mounts: dict[str, Path]  # container path -> local directory


@dataclass
class PodRunner:
    """Turns a rendered workload's containers into local command lines (one pod's worth)."""

    workload: Json
    scratch: Path
    programs: Mapping[str, str]
    host_paths: Mapping[str, Path] = field(default_factory=dict)
    node_name: str = "node"

    def local_volume(self, name: str) -> Path:
        for volume in pod_spec(self.workload).get("volumes", []):
            if volume["name"] != name:
                continue
            if "hostPath" in volume:
                return self._host_path(volume["hostPath"]["path"])
            if "emptyDir" in volume:
                return self._scratch(f"emptydir/{name}")
            if "serviceAccountToken" in str(volume.get("projected", {})):
                # The token itself reaches the process through pod_command, at the in-cluster
                # path; only containers that mount this volume are given it (mounts_token).
                return self._scratch(f"projected/{name}")
            raise AssertionError(f"volume {name}: only hostPath, emptyDir and a projected "
                                 "service account token are emulated")
        raise AssertionError(f"no volume {name} in the pod")

    def mounts_token(self, name: str) -> bool:
        """Whether container ``name`` gets the ServiceAccount token: it mounts a projected
        token volume, or the pod automounts one (the API's default)."""
        spec = pod_spec(self.workload)
        token_volumes = {volume["name"] for volume in spec.get("volumes", [])
                         if "serviceAccountToken" in str(volume.get("projected", {}))}
        mounts = {mount["name"] for mount in container(self.workload, name).get("volumeMounts",
                                                                                 [])}
        return bool(mounts & token_volumes) or spec.get("automountServiceAccountToken", True)

    def _host_path(self, path: str) -> Path:
        for prefix, local in sorted(self.host_paths.items(), key=lambda item: -len(item[0])):
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                target = local / path[len(prefix):].lstrip("/")
                target.mkdir(parents=True, exist_ok=True)
                return target
        return self._scratch("hostpath" + path)

    def _scratch(self, relative: str) -> Path:
        directory = self.scratch / relative
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def _environment(self, spec: Json, extra: Mapping[str, str]) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in spec.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            field_path = item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            known = {"spec.nodeName": self.node_name,
                     "metadata.namespace": self.workload["metadata"].get("namespace", ""),
                     # A pod's own address; here loopback (deployment.py picks free ports).
                     "status.podIP": "127.0.0.1"}
            if field_path not in known:
                raise AssertionError(f"env {item['name']}: only fieldRef {sorted(known)} "
                                     "is emulated")
            env[item["name"]] = known[field_path]
        env.update(extra)
        return env

    def local(self, name: str, extra_env: Mapping[str, str] | None = None, *,
              image_defaults: Sequence[str] = ()) -> LocalContainer:
        """``image_defaults``: flags the image's program uses by default when not given (such
        as a path inside the container), made explicit so that they map like the rest."""
        spec = container(self.workload, name)
        env = self._environment(spec, extra_env or {})
        mounts = {mount["mountPath"]: self.local_volume(mount["name"])
                  for mount in spec.get("volumeMounts", [])}
        command = list(spec.get("command", []))
        args = [*image_defaults, *(self._expand(arg, env) for arg in spec.get("args", []))]
        program_index = next((i for i, word in enumerate(command) if word in self.programs),
                             None)
        if program_index is not None:
            argv = [self.programs[command[program_index]], *command[program_index + 1:], *args]
        elif not command and name in self.programs:  # the image's entrypoint, by container
            argv = [self.programs[name], *args]
        else:
            raise AssertionError(f"container {name}: no local program for {command or name}")
        # Paths inside a mount first; a remaining host path (e.g. the socket path the
        # registrar hands to kubelet) is one of this machine's, mapped like a hostPath volume.
        paths = {**{prefix: local for prefix, local in self.host_paths.items()}, **mounts}
        argv = [argv[0], *(_rewrite_paths(arg, paths) for arg in argv[1:])]
        return LocalContainer(argv=argv, env=env, mounts=mounts)

    @staticmethod
    def _expand(arg: str, env: Mapping[str, str]) -> str:
        return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                      lambda match: env.get(match.group(1), match.group(0)), arg)


def _rewrite_paths(arg: str, mounts: Mapping[str, Path]) -> str:
    """Replace a container path at the start of a path in ``arg`` with its local directory."""
    for mount_path, local in sorted(mounts.items(), key=lambda item: -len(item[0])):
        pattern = r"(?<![\w.-])" + re.escape(mount_path.rstrip("/")) + r"(?=/|$)"
        if re.search(pattern, arg):
            return re.sub(pattern, lambda _match, local=local: str(local), arg)
    return arg
