"""The Docker engine of ``scripts/images`` (Debian's docker.io, one per checkout) and the images
it built: a thin client for tests and benchmarks.

``scripts/images/build.sh`` builds ``docker/Dockerfile``'s targets into it; ``Engine`` runs the
docker client against it, and knows the daemon's pid (its mount namespace holds the containers'
mounts: ``shared_directory`` makes a directory there that mounts propagate through, as a
kubelet's root directory is on a node).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts" / "images"
TARGETS = ("controller", "node", "controller-efs")
TAG = os.environ.get("IMAGE_TAG", "dev")


def paths() -> dict[str, str]:
    """The variables of scripts/images/paths.sh, as the scripts see them."""
    output = subprocess.run(
        ["bash", "-c", f"source {SCRIPTS / 'paths.sh'} && echo \"$DOCKER_CLI\"; "
                       "echo \"$DOCKER_HOST\"; echo \"$EFS_CSI_IMAGES_CACHE\"; "
                       "echo \"$DOCKERD_PIDFILE\""],
        capture_output=True, text=True, check=True, timeout=10).stdout.splitlines()
    return {"cli": output[0], "host": output[1], "cache": output[2], "pidfile": output[3]}


@dataclass
class Engine:
    cli: str
    host: str
    cache: Path
    report: dict[str, Any] = field(default_factory=dict)
    pidfile: Path | None = None

    def image(self, target: str) -> str:
        return f"efs-csi-{target}:{TAG}"

    def docker(self, *args: str, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.cli, "-H", self.host, *args], capture_output=True,
                                text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def run(self, target: str, *command: str, options: Sequence[str] = (),
            entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command in a throw-away container with no network."""
        args = ["run", "--rm", "--network", "none", *options]
        if entrypoint is not None:
            args += ["--entrypoint", entrypoint]
        return self.docker(*args, self.image(target), *command)

    def inspect(self, target: str) -> dict[str, Any]:
        data = json.loads(self.docker("image", "inspect", self.image(target)).stdout)
        return data[0]  # type: ignore[no-any-return]

    def container_pid(self, name: str) -> int:
        """The host pid of a running container's first process."""
        return int(self.docker("inspect", "--format", "{{.State.Pid}}", name).stdout.strip())

    def daemon_pid(self) -> int:
        if self.pidfile is None:
            raise RuntimeError("the engine's pid file is unknown")
        return int(self.pidfile.read_text().strip())

    @contextmanager
    def shared_directory(self, path: Path) -> Iterator[Path]:
        """``path`` as a shared mount in the daemon's mount namespace, so that a container's
        ``rshared`` volume of it propagates mounts both ways and a restarted container finds
        them (the daemon runs in a private namespace of its own: scripts/images/dockerd.sh)."""
        path.mkdir(parents=True, exist_ok=True)
        enter = ["nsenter", f"--mount=/proc/{self.daemon_pid()}/ns/mnt"]
        subprocess.run([*enter, "sh", "-c", f"mount --bind '{path}' '{path}' && "
                        f"mount --make-shared '{path}'"], check=True, capture_output=True,
                       timeout=30)
        try:
            yield path
        finally:
            subprocess.run([*enter, "umount", "-R", "-l", str(path)], check=False,
                           capture_output=True, timeout=60)


def engine_from_paths(report: dict[str, Any] | None = None) -> Engine:
    found = paths()
    return Engine(found["cli"], found["host"], Path(found["cache"]), report or {},
                  Path(found["pidfile"]))
