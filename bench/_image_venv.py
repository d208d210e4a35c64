"""Image-like virtualenvs for the benchmarks: each binary installed from its wheels, as its
container image has it (docker/Dockerfile, docker/venv.sh), not from the editable dev venv.

The dev venv measures something no user runs: editable finders on ``sys.meta_path`` and
development packages (``rich``, which structlog's console renderer picks up when present) add
import time. Here the three wheels are built from the checkout, and one venv per binary gets
efs-csi-core's wheel and that binary's (the node with its ``local`` extra, as the kind image:
the benchmarks use the local backend), its dependencies from the package index (pip's cache),
then, as the image build does, pip and setuptools removed, each console script run at ``-OO``
and every module's bytecode compiled at that level (docker/venv.sh). The image compiles its
standard library at that level; here the interpreter's own is used, compiled by the first start
(the benchmarks' warm-up run) where it has none yet. The venvs are cached under
``.cache/bench-venv/<hash>``, keyed by the wheels' contents (member names and bytes, not zip
timestamps) and the version of these steps, so a change to the driver's code or packaging makes
new ones.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import venv
import zipfile
from pathlib import Path

from testbed.wheels import (  # bench/startup.py puts the repo on sys.path
    build_wheels,
    wheel_requirement,
)

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench-venv"
# What each binary's venv installs: the distributions, with extras, as wheel requirements.
INSTALLS = {"efs-csi-node": ("efs-csi-core", "efs-csi-node[local]"),
            "efs-csi-controller": ("efs-csi-core", "efs-csi-controller")}
#: Bumped when the steps below change, so the cached venvs are made again.
STEPS_VERSION = b"2: the binaries at -OO"


def run_optimized(script: Path) -> None:
    """The console script's interpreter line with ``-OO``, as docker/venv.sh writes it."""
    interpreter, _, rest = script.read_text().partition("\n")
    if not interpreter.startswith("#!/") or " " in interpreter:
        raise RuntimeError(f"{script}: unexpected interpreter line {interpreter!r}")
    script.write_text(f"{interpreter} -OO\n{rest}")


def _wheels_hash(wheels: dict[str, Path]) -> str:
    digest = hashlib.sha256(STEPS_VERSION)
    for name in sorted(wheels):
        with zipfile.ZipFile(wheels[name]) as archive:
            for member in sorted(archive.namelist()):
                digest.update(member.encode() + b"\0" + archive.read(member) + b"\0")
    return digest.hexdigest()[:16]


def image_venvs() -> dict[str, Path]:
    """The ``bin`` directory of each binary's image-like venv, built when missing."""
    with tempfile.TemporaryDirectory(prefix="efs-csi-bench-wheels-") as tmp:
        wheels = build_wheels(Path(tmp))
        home = CACHE / _wheels_hash(wheels)
        bins = {binary: home / binary / "bin" for binary in INSTALLS}
        if all((path / ".complete").exists() for path in bins.values()):
            return bins
        for binary, specs in INSTALLS.items():
            root = home / binary
            shutil.rmtree(root, ignore_errors=True)
            venv.create(root, with_pip=True, clear=True)
            python = root / "bin" / "python"
            subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check",
                            *(wheel_requirement(spec, wheels) for spec in specs)],
                           check=True, timeout=900)
            # As the image build does (docker/venv.sh): no pip or setuptools (their .pth hook
            # would run at every start), the binary at -OO, every module's bytecode up front.
            subprocess.run([str(python), "-m", "pip", "uninstall", "--quiet", "-y",
                            "--disable-pip-version-check", "pip", "setuptools"],
                           check=True, timeout=300)
            site = subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                check=True, capture_output=True, text=True).stdout.strip()
            run_optimized(root / "bin" / binary)
            subprocess.run([str(python), "-m", "compileall", "-q", "-f", "-j", "0", "-o", "2",
                            "--invalidation-mode", "unchecked-hash", site],
                           check=True, timeout=600, capture_output=True)
            (root / "bin" / ".complete").touch()
    for stale in CACHE.iterdir():  # older driver versions' venvs
        if stale != home:
            shutil.rmtree(stale, ignore_errors=True)
    return bins


if __name__ == "__main__":
    for binary, path in image_venvs().items():
        print(binary, path)
