"""The kind workflow's pieces that run without kind (kind needs a registry for its node image,
which no machine here reaches): the file system step is idempotent against a real EFS API
(moto), and the scripts keep the promises docs/kind.md makes."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from testbed.moto_server import MotoEndpoint
from tests.support.ci import REPO

HELPER = REPO / "scripts" / "kind-file-system.py"


def file_system(moto: MotoEndpoint, token: str) -> str:
    result = subprocess.run([sys.executable, str(HELPER), "--endpoint", moto.url, "--token", token],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_second_run_finds_the_first_runs_file_system(moto: MotoEndpoint) -> None:
    first = file_system(moto, "kind-e2e")
    assert first.startswith("fs-")
    assert file_system(moto, "kind-e2e") == first
    assert file_system(moto, "another") != first


def test_e2e_deletes_the_claim_and_checks_the_directory_is_gone() -> None:
    script = (REPO / "scripts" / "kind-e2e.sh").read_text()
    assert "kind-file-system.py" in script
    assert "delete pvc" in script and "--for=delete" in script
    assert "sleep 3" not in script, "wait for the port-forward, do not guess"


def test_kind_values_delete_access_point_directories_as_root() -> None:
    values = yaml.safe_load((REPO / "kind" / "values.yaml").read_text())
    assert values["controller"]["deleteAccessPointRootDir"] is True
    assert values["mountBackend"] == "local"


def test_kind_down_removes_the_data_as_root_inside_docker() -> None:
    """Directories the driver made belong to access point owners (e.g. uid 1000, mode 700):
    a host user cannot rm them, root in a container can."""
    script = (REPO / "scripts" / "kind-down.sh").read_text()
    assert "docker" in script and "rm -rf" in script


def test_kind_doc_lists_the_prerequisites() -> None:
    text = (REPO / "docs" / "kind.md").read_text()
    for needed in ("docker", "kind", "kubectl", "helm", "Python", "EFS_CSI_KIND_ZONE",
                   "EFS_CSI_KIND_DATA", "KIND_CLUSTER", "crates.io", "GitHub"):
        assert needed in text, needed
