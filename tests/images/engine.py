"""The images under test, built by ``scripts/images/build.sh``, and the engine that runs them.

``built_images()`` builds all three targets of ``docker/Dockerfile`` with the Docker engine from
Debian's packages (``scripts/images/dockerd.sh``), reusing its build cache, and stops the engine
afterwards when it started it. ``Engine`` (testbed/images.py) runs the docker client against it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed.images import SCRIPTS, TAG, TARGETS, Engine, engine_from_paths, paths
from tests.support.ci import REPO, skip_or_fail

__all__ = ["TAG", "Engine", "built_images"]


def vendored_bundle() -> Path | None:
    """efs-utils v3.2.0's git bundle, where scripts/images/build.sh looks for it."""
    named = os.environ.get("EFS_UTILS_BUNDLE")
    candidates = [Path(named)] if named else [
        REPO / ".." / "shared" / "vendor" / "efs-utils-v3.2.0.bundle",
        REPO / ".." / ".." / "shared" / "vendor" / "efs-utils-v3.2.0.bundle"]
    return next((path for path in candidates if path.is_file()), None)


@contextmanager
def built_images() -> Iterator[Engine]:
    if os.geteuid() != 0:
        skip_or_fail("building and running images needs root (a Docker engine)")
    for command in ("apt-get", "dpkg-deb", "unshare"):
        if shutil.which(command) is None:
            skip_or_fail(f"building images needs Debian's {command}")
    if vendored_bundle() is None:
        skip_or_fail("the vendored efs-utils bundle (../shared/vendor/efs-utils-v3.2.0.bundle) "
                     "is not beside the checkout, and the images build the real efs-utils")
    check = subprocess.run([str(SCRIPTS / "efs-proxy.sh"), "--check", "-"],
                           capture_output=True, text=True, timeout=30, check=False)
    if check.returncode != 0:
        skip_or_fail(f"efs-proxy cannot be built here: {check.stderr.strip()}")
    cache = Path(paths()["cache"])
    was_running = subprocess.run([str(SCRIPTS / "dockerd.sh"), "status"],
                                 capture_output=True, timeout=30).returncode == 0
    log = cache / "build-output.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("w") as output:
            # A cold run compiles efs-proxy (about 22 minutes on 2 cores).
            result = subprocess.run([str(SCRIPTS / "build.sh"), "--keep-daemon", *TARGETS],
                                    stdout=output, stderr=subprocess.STDOUT, timeout=3600,
                                    env={**os.environ, "IMAGE_TAG": TAG})
        if result.returncode != 0:
            raise AssertionError(f"image build failed; its output:\n{log.read_text()[-6000:]}")
        report = json.loads((cache / "report.json").read_text())
        yield engine_from_paths(report)
    finally:
        if not was_running:
            subprocess.run([str(SCRIPTS / "dockerd.sh"), "stop"], timeout=120, check=False)
