"""Each distribution installs alone, in a clean virtualenv, and its binary runs from there.

The three wheels are built once; each environment gets efs-csi-core's wheel and one binary's
(its dependencies from the package index; pip's cache makes repeats cheap), as its container
image does. The binary then answers Probe and GetPluginInfo over its socket, and the other
binary's package, the libraries only the other binary needs and the test tools are proved
absent, so a dependency that leaks from one distribution to another fails here.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

from efs_csi import csi
from testbed.processes import RunningBinary
from testbed.wheels import DISTRIBUTIONS, build_wheels, wheel_requirement

# Builds wheels and virtualenvs, installs from the package index, runs the binaries.
pytestmark = pytest.mark.slow

TEST_TOOLS = ("moto", "pytest", "grpc", "boto3")


@dataclass(frozen=True)
class Setup:
    """One clean environment: what is installed, and what must and must not be importable."""

    name: str
    wheels: tuple[str, ...]  # distribution names, with extras: "efs-csi-node[local]"
    script: str
    present: tuple[str, ...]
    absent: tuple[str, ...]
    missing_scripts: tuple[str, ...]


SETUPS = [
    # The controller: the core's EFS and Kubernetes adapters; never the node.
    Setup("controller", ("efs-csi-core", "efs-csi-controller"), "efs-csi-controller",
          present=("efs_csi_controller", "aiobotocore", "kubernetes_asyncio"),
          absent=("efs_csi_node", *TEST_TOOLS), missing_scripts=("efs-csi-node",)),
    # The node as its image has it (efs backend): botocore for efs-utils, no EFS API client.
    Setup("node", ("efs-csi-core", "efs-csi-node"), "efs-csi-node",
          present=("efs_csi_node", "botocore", "kubernetes_asyncio"),
          absent=("efs_csi_controller", "aiobotocore", *TEST_TOOLS),
          missing_scripts=("efs-csi-controller",)),
    # The node with the local backend's extra: the EFS API client, still never the controller.
    Setup("node-local", ("efs-csi-core", "efs-csi-node[local]"), "efs-csi-node",
          present=("efs_csi_node", "aiobotocore", "efs_csi.adapters.aws"),
          absent=("efs_csi_controller", *TEST_TOOLS), missing_scripts=("efs-csi-controller",)),
]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three wheels, by distribution name."""
    built = build_wheels(tmp_path_factory.mktemp("wheels"), timeout=300)
    assert set(built) == DISTRIBUTIONS, built
    return built


def make_env(directory: Path, requirements: list[str]) -> Path:
    venv.EnvBuilder(with_pip=True).create(directory)
    python = directory / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *requirements], check=True, timeout=540)
    return python


def importable(python: Path, module: str) -> bool:
    found = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True,
                           timeout=60)
    return found.returncode == 0


@pytest.mark.timeout(600)
@pytest.mark.asyncio
@pytest.mark.parametrize("setup", SETUPS, ids=lambda setup: setup.name)
async def test_each_distribution_installs_alone_and_runs(setup: Setup, wheels: dict[str, Path],
                                                         tmp_path: Path) -> None:
    requirements = [wheel_requirement(wanted, wheels) for wanted in setup.wheels]
    python = await asyncio.to_thread(make_env, tmp_path / "env", requirements)
    for module in setup.present:
        assert importable(python, module), f"{module} missing from the {setup.name} environment"
    for module in setup.absent:
        assert not importable(python, module), f"{module} leaked into {setup.name}"
    for script in setup.missing_scripts:
        assert not (python.parent / script).exists(), f"{script} installed in {setup.name}"

    socket = tmp_path / "csi.sock"
    log_path = tmp_path / "out.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update({"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"})
    args = ["--endpoint", f"unix://{socket}"]
    if setup.script == "efs-csi-node":
        # efs-utils' configuration goes to the test's directory, not the host's /var/amazon.
        args += ["--node-id", "n", "--availability-zone", "us-east-1a",
                 "--efs-utils-config-dir", str(tmp_path / "efs-utils"),
                 "--efs-utils-legacy-config-dir", str(tmp_path / "no-legacy"),
                 "--efs-utils-state-dir", str(tmp_path / "efs-state")]
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(python.parent / setup.script), *args, stdout=log,
            stderr=asyncio.subprocess.STDOUT, env=env, cwd=tmp_path)
    running = RunningBinary(setup.name, socket, process, log_path)
    try:
        await running.wait_ready()
        channel = running.channel()
        try:
            info = await csi.IdentityStub(channel).get_plugin_info(csi.GetPluginInfoRequest())
        finally:
            channel.close()
        assert info.name == "efs.csi.aws.com"
    finally:
        code = await running.stop()
    assert code == 0, running.logs()
