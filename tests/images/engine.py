"""The images under test, built by ``scripts/images/build.sh``, and the engine that runs them.

``built_images()`` builds all three targets of ``docker/Dockerfile`` with the Docker engine from
Debian's packages (``scripts/images/dockerd.sh``), reusing its build cache, and stops the engine
afterwards when it started it. ``Engine`` runs the docker client against that engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.ci import REPO, skip_or_fail

SCRIPTS = REPO / "scripts" / "images"
TARGETS = ("controller", "node", "controller-efs")
TAG = os.environ.get("IMAGE_TAG", "dev")


def _paths() -> dict[str, str]:
    """The variables of scripts/images/paths.sh, as the scripts see them."""
    output = subprocess.run(
        ["bash", "-c", f"source {SCRIPTS / 'paths.sh'} && echo \"$DOCKER_CLI\"; "
                       "echo \"$DOCKER_HOST\"; echo \"$EFS_CSI_IMAGES_CACHE\""],
        capture_output=True, text=True, check=True, timeout=10).stdout.splitlines()
    return {"cli": output[0], "host": output[1], "cache": output[2]}


@dataclass
class Engine:
    cli: str
    host: str
    cache: Path
    report: dict[str, Any] = field(default_factory=dict)

    def image(self, target: str) -> str:
        return f"efs-csi-{target}:{TAG}"

    def docker(self, *args: str, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.cli, "-H", self.host, *args], capture_output=True,
                                text=True, timeout=timeout)
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


@contextmanager
def built_images() -> Iterator[Engine]:
    if os.geteuid() != 0:
        skip_or_fail("building and running images needs root (a Docker engine)")
    for command in ("apt-get", "dpkg-deb", "unshare"):
        if shutil.which(command) is None:
            skip_or_fail(f"building images needs Debian's {command}")
    paths = _paths()
    was_running = subprocess.run([str(SCRIPTS / "dockerd.sh"), "status"],
                                 capture_output=True, timeout=30).returncode == 0
    log = Path(paths["cache"]) / "build-output.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("w") as output:
            result = subprocess.run([str(SCRIPTS / "build.sh"), "--keep-daemon", *TARGETS],
                                    stdout=output, stderr=subprocess.STDOUT, timeout=2400,
                                    env={**os.environ, "IMAGE_TAG": TAG})
        if result.returncode != 0:
            raise AssertionError(f"image build failed; its output:\n{log.read_text()[-6000:]}")
        report = json.loads((Path(paths["cache"]) / "report.json").read_text())
        yield Engine(paths["cli"], paths["host"], Path(paths["cache"]), report)
    finally:
        if not was_running:
            subprocess.run([str(SCRIPTS / "dockerd.sh"), "stop"], timeout=120, check=False)


def wait_for_http(url: str, timeout: float = 60.0) -> str:
    """GET ``url`` until it answers (from the host: containers on the host network)."""
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()  # type: ignore[no-any-return]
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)
