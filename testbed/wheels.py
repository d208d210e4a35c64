"""The three distributions as wheels, built from the checkout, and requirements naming them.

Used by the packaging tests (each distribution alone in a clean virtualenv) and the start-up
benchmark (image-like virtualenvs). The sources are copied first: setuptools leaves build/ and
*.egg-info behind where it builds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = frozenset({"efs-csi-core", "efs-csi-controller", "efs-csi-node"})


def build_wheels(out: Path, *, timeout: float = 600) -> dict[str, Path]:
    """Build the three wheels into ``out``; the wheels by distribution name."""
    with tempfile.TemporaryDirectory(prefix="efs-csi-wheel-sources-") as tmp:
        sources = Path(tmp)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / name, sources / name)
        leftovers = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
        for folder in ("efs_csi", "controller", "node"):
            shutil.copytree(REPO / folder, sources / folder, ignore=leftovers)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--no-build-isolation", "-w", str(out), str(sources),
                        str(sources / "controller"), str(sources / "node")],
                       check=True, timeout=timeout, capture_output=True)
    return {path.name.split("-")[0].replace("_", "-"): path for path in out.glob("*.whl")}


def wheel_requirement(spec: str, wheels: dict[str, Path]) -> str:
    """``spec`` ("efs-csi-node[local]") as a pip requirement on its built wheel."""
    name, _, extras = spec.partition("[")
    return f"{name}{'[' + extras if extras else ''} @ {wheels[name].as_uri()}"
