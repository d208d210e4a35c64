"""The three distributions are one release: one version, exact pins between them.

efs_csi._version holds the version (the core's pyproject.toml reads it); the binaries'
pyproject.toml files repeat it and pin efs-csi-core to exactly it; the installed metadata of
this checkout's environment agrees (a stale environment would test something else).
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path
from typing import Any

from efs_csi import __version__
from tests.support.ci import REPO

DISTRIBUTIONS = {"efs-csi-core": REPO, "efs-csi-controller": REPO / "controller",
                 "efs-csi-node": REPO / "node"}
_OURS = re.compile(r"(?P<name>efs-csi-(?:core|controller|node))(?:\[[a-z,]+\])?(?P<pin>.*)")


def project(folder: Path) -> dict[str, Any]:
    with (folder / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]  # type: ignore[no-any-return]


def requirements(meta: dict[str, Any]) -> list[str]:
    return [*meta.get("dependencies", []),
            *(r for extra in meta.get("optional-dependencies", {}).values() for r in extra)]


def test_every_distribution_has_the_one_version() -> None:
    core = project(REPO)
    assert core["name"] == "efs-csi-core"
    assert core["dynamic"] == ["version"]  # from efs_csi._version, the one the code reports
    for name, folder in DISTRIBUTIONS.items():
        meta = project(folder)
        assert meta["name"] == name
        if folder != REPO:
            assert meta["version"] == __version__, f"{name} is {meta['version']}"


def test_the_distributions_pin_each_other_exactly() -> None:
    pins = []
    for folder in DISTRIBUTIONS.values():
        for requirement in requirements(project(folder)):
            ours = _OURS.fullmatch(requirement.replace(" ", ""))
            if ours is not None:
                pins.append((ours["name"], ours["pin"]))
    assert pins, "the binaries must require efs-csi-core"
    assert all(pin == f"=={__version__}" for _, pin in pins), pins
    assert {name for name, _ in pins} == {"efs-csi-core"}  # binaries never need each other


def test_the_environment_has_this_release_installed() -> None:
    for name in DISTRIBUTIONS:
        assert importlib.metadata.version(name) == __version__, (
            f"{name} installed at {importlib.metadata.version(name)}: run make venv")
