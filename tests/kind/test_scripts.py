"""The kind workflow's pieces that need no cluster: the flow's EFS API calls against a real one
(moto), and the promises docs/kind.md makes about the scripts and values."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from testbed.kind.efs_api import EfsApi
from testbed.moto_server import MotoEndpoint
from tests.support.ci import REPO

SCRIPTS = sorted([*REPO.glob("scripts/kind-*.sh"), *REPO.glob("scripts/kind/*.sh")])
VALUES = yaml.safe_load((REPO / "kind" / "values.yaml").read_text())


def test_a_second_run_finds_the_first_runs_file_system(moto: MotoEndpoint) -> None:
    api = EfsApi(moto.url)
    first = api.file_system("kind-e2e")
    assert first.startswith("fs-")
    assert api.file_system("kind-e2e") == first
    assert api.file_system("another") != first
    one_zone = api.file_system("one-zone", zone="us-east-1b")
    described = api.client.describe_file_systems(FileSystemId=one_zone)["FileSystems"][0]
    assert described["AvailabilityZoneName"] == "us-east-1b"


def test_static_access_points_are_made_and_listed(moto: MotoEndpoint) -> None:
    api = EfsApi(moto.url)
    file_system = api.file_system("kind-e2e")
    made = api.create_access_point(file_system, "/e2e-static", 1000, 1000)
    assert [p["AccessPointId"] for p in api.access_points(file_system)] == [made]
    assert api.access_point(made)["RootDirectory"]["Path"] == "/e2e-static"
    api.delete_access_point(made)
    assert api.access_points(file_system) == []


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_parse(script: Path) -> None:
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, timeout=10,
                          check=False).returncode == 0


def test_kind_values_run_what_the_flow_needs() -> None:
    assert VALUES["controller"]["deleteAccessPointRootDir"] is True
    assert VALUES["mountBackend"] == "local"
    # csi-provisioner's leader election decides between two replicas (the failover step).
    assert VALUES["controller"]["replicaCount"] == 2
    for component in ("controller", "node"):
        env = {item["name"]: item["value"] for item in VALUES[component]["env"]}
        assert env["AWS_EC2_METADATA_DISABLED"] == "true", component


def test_kind_up_takes_a_node_image_and_prebuilt_images() -> None:
    script = (REPO / "scripts" / "kind-up.sh").read_text()
    assert "KIND_NODE_IMAGE" in script and '--image "${node_image}"' in script
    assert "EFS_CSI_KIND_IMAGES" in script and "kind load docker-image" in script
    assert "EFS_CSI_KIND_ZONES" in script


def test_kind_down_removes_the_data_as_root_inside_docker() -> None:
    """Directories the driver made belong to access point owners (e.g. uid 1000, mode 700):
    a host user cannot rm them, root in a container can."""
    script = (REPO / "scripts" / "kind-down.sh").read_text()
    assert "docker" in script and "rm -rf" in script


def test_kind_doc_lists_the_prerequisites_and_settings() -> None:
    text = (REPO / "docs" / "kind.md").read_text()
    for needed in ("docker", "kind", "kubectl", "helm", "Python", "EFS_CSI_KIND_ZONES",
                   "EFS_CSI_KIND_DATA", "KIND_CLUSTER", "KIND_NODE_IMAGE", "EFS_CSI_KIND_IMAGES",
                   "EFS_CSI_KIND_RESULTS", "crates.io", "GitHub", "make kind-node-image",
                   "stand-in"):
        assert needed in text, needed
