#!/usr/bin/env python3
"""Lock each image's Python packages: the whole dependency closure, every version exact, every
file's sha256 (docker/requirements/<flavor>.txt, installed by docker/venv.sh with
``pip install --require-hashes``, which refuses a package that is missing or differs).

Usage: scripts/images/lock.py   (``make lock``) rewrite the locks from the pyproject files: run
it after changing a dependency there (tests/images/test_lock.py fails until then), and to take
newer releases of the indirect dependencies.

Flavors: ``controller`` (efs-csi-controller), ``node`` (efs-csi-node), ``node-local``
(efs-csi-node[local], the kind image: NODE_EXTRAS=local). Each flavor's direct requirements are
its distribution's dependencies (with its extras) and those of the efs-csi-core extras it asks
for; the driver's own three distributions are not in the lock (the image builds their wheels
from this source, with the build backend of ``build``: the three pyproject files'
``[build-system] requires``, so no unpinned setuptools is fetched to build them either).
The closure is resolved by uv (pinned below; installed on first use into .cache/lock-tools)
for CPython 3.11, the Python of the images' Debian base, on any platform
(``--universal``), with the hashes of every file of each version, so an arm64 build verifies as
an amd64 one does. tests/images/test_lock.py checks the locks against the pyproject files and
that pip refuses an incomplete or tampered one.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCKS = REPO / "docker" / "requirements"
UV_VERSION = "0.13.8"
PYTHON_VERSION = "3.11"
# flavor -> (binary, its extras); "build": the wheels' build backend
FLAVORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "controller": ("controller", ()),
    "node": ("node", ()),
    "node-local": ("node", ("local",)),
    "build": ("", ()),
}
_CORE = re.compile(r"efs-csi-core(?:\[(?P<extras>[a-z,]+)\])?==\S+")


def _project(path: Path) -> dict[str, object]:
    with path.open("rb") as file:
        return tomllib.load(file)["project"]  # type: ignore[no-any-return]


def build_requirements() -> list[str]:
    """What building the three wheels needs: each pyproject's [build-system] requires."""
    requirements: set[str] = set()
    for path in (REPO / "pyproject.toml", REPO / "controller" / "pyproject.toml",
                 REPO / "node" / "pyproject.toml"):
        with path.open("rb") as file:
            requirements.update(tomllib.load(file)["build-system"]["requires"])
    return sorted(requirements)


def direct_requirements(binary: str, extras: tuple[str, ...]) -> list[str]:
    """The requirements a flavor's venv is made from, with efs-csi-core's replaced by its own."""
    if not binary:
        return build_requirements()
    core = _project(REPO / "pyproject.toml")
    own = _project(REPO / binary / "pyproject.toml")
    wanted = list(own["dependencies"])  # type: ignore[call-overload]
    for extra in extras:
        wanted += own["optional-dependencies"][extra]  # type: ignore[index]
    requirements: set[str] = set()
    for requirement in wanted:
        local = _CORE.fullmatch(requirement)
        if local is None:
            requirements.add(requirement)
            continue
        requirements.update(core["dependencies"])  # type: ignore[arg-type]
        for extra in filter(None, (local.group("extras") or "").split(",")):
            requirements.update(core["optional-dependencies"][extra])  # type: ignore[index]
    return sorted(requirements)


def uv() -> Path:
    tools = REPO / ".cache" / "lock-tools"
    binary = tools / "bin" / "uv"
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                             check=False).stdout if binary.exists() else ""
    if f"uv {UV_VERSION}" not in version:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(tools)], check=True)
        subprocess.run([str(tools / "bin" / "pip"), "install", "--quiet",
                        f"uv=={UV_VERSION}"], check=True)
    return binary


def header(flavor: str, requirements: list[str]) -> str:
    binary, extras = FLAVORS[flavor]
    if binary:
        distribution = f"efs-csi-{binary}" + (f"[{','.join(extras)}]" if extras else "")
        what = [f"# The {flavor} image's Python packages: the whole dependency closure of",
                f"# {distribution} and efs-csi-core (their wheels are built in the image",
                "# from this source),"]
        sources = f"pyproject.toml, {binary}/pyproject.toml"
    else:
        what = ["# What builds the driver's wheels in the image (docker/Dockerfile, stage",
                "# wheels: pip wheel --no-build-isolation), with its dependencies,"]
        sources = "[build-system] requires of the three pyproject.toml"
    lines = [
        *what,
        "# every version exact and every file's sha256 (pip install --require-hashes).",
        f"# Direct requirements ({sources}):",
        *(f"#   {requirement}" for requirement in requirements),
        f"# Generated by `make lock` (scripts/images/lock.py: uv {UV_VERSION}, CPython "
        f"{PYTHON_VERSION},",
        "# any platform); tests/images/test_lock.py checks it. Do not edit.",
    ]
    return "\n".join(lines) + "\n"


def compile_lock(flavor: str) -> str:
    binary, extras = FLAVORS[flavor]
    requirements = direct_requirements(binary, extras)
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / f"{flavor}.in"
        source.write_text("\n".join(requirements) + "\n")
        result = subprocess.run(
            [str(uv()), "pip", "compile", source.name, "--generate-hashes", "--universal",
             "--python-version", PYTHON_VERSION, "--no-header", "--quiet"],
            cwd=work, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"uv could not lock {flavor}:\n{result.stderr}")
    body = result.stdout.replace(f"-r {source.name}", "pyproject.toml")
    return header(flavor, requirements) + body


def main() -> int:
    LOCKS.mkdir(parents=True, exist_ok=True)
    for flavor in FLAVORS:
        path = LOCKS / f"{flavor}.txt"
        text = compile_lock(flavor)
        changed = not path.exists() or path.read_text() != text
        path.write_text(text)
        print(f"{path.relative_to(REPO)}: {'written' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
