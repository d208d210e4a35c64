"""hadolint on the Dockerfiles and shellcheck on the scripts (both installed as wheels)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ci import REPO, skip_or_fail

DOCKERFILE = REPO / "docker" / "Dockerfile"
# Every shell script we ship; paths.sh is sourced by the scripts beside it, not run.
SCRIPTS = sorted([*(REPO / "scripts").rglob("*.sh"), *(REPO / "docker").glob("*.sh")])
SOURCED = {REPO / "scripts" / "images" / "paths.sh", REPO / "scripts" / "kind" / "paths.sh"}


def venv_tool(name: str) -> str:
    """The linter from the test extra, next to this interpreter (or on PATH)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.is_file() else shutil.which(name)
    if not found:
        skip_or_fail(f"{name} not installed (make venv installs it)")
    return found


def test_one_dockerfile_builds_every_image() -> None:
    targets = {line.split()[-1] for line in DOCKERFILE.read_text().splitlines()
               if line.startswith("FROM ") and " AS " in line}
    assert {"controller", "node", "controller-efs"} <= targets
    assert not list((REPO / "docker").glob("*.Dockerfile")), "one Dockerfile, several targets"


def test_hadolint() -> None:
    result = subprocess.run([venv_tool("hadolint"), "--failure-threshold", "info",
                             str(DOCKERFILE)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    result = subprocess.run([venv_tool("hadolint"), str(bad)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode != 0


def test_there_are_scripts() -> None:
    assert SCRIPTS


def script_id(script: Path) -> str:
    return str(script.relative_to(REPO))


@pytest.mark.parametrize("script", SCRIPTS, ids=script_id)
def test_shellcheck(script: Path) -> None:
    result = subprocess.run([venv_tool("shellcheck"), "--severity=style", "--external-sources",
                             str(script)], capture_output=True, text=True, timeout=30,
                            cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", sorted(set(SCRIPTS) - SOURCED), ids=script_id)
def test_scripts_are_executable_and_strict(script: Path) -> None:
    text = script.read_text()
    if script.parent.name == "docker":  # runs inside the images: POSIX sh, as Debian has it
        assert text.startswith("#!/bin/sh\n"), script
        assert "set -eu" in text, script
    else:
        assert text.startswith("#!/usr/bin/env bash\n"), script
        assert "set -euo pipefail" in text, script
    assert script.stat().st_mode & 0o111, f"{script} is not executable"


def test_node_image_entrypoint_matches_the_chart() -> None:
    """The chart overrides the entrypoint; it must start the same init the image has."""
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["/usr/bin/tini", "-g", "--", "efs-csi-node"]' in text
    chart = (REPO / "helm" / "templates" / "node-daemonset.yaml").read_text()
    assert "command: [/usr/bin/tini, -g, --, efs-csi-node]" in chart
