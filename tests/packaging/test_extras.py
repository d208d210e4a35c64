"""Each binary installs and starts with only its own extra (as in its container image).

Builds the wheel once, installs it into a fresh virtualenv per extra from the package index
(pip's cache makes repeats cheap), then starts the binary from that environment and asks it
for Probe over its socket.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from efs_csi import csi
from tests.support.ci import REPO
from tests.support.processes import RunningBinary


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(out), str(REPO)], check=True)
    (built,) = out.glob("efs_csi-*.whl")
    return built


def make_env(directory: Path, requirement: str) -> Path:
    venv.EnvBuilder(with_pip=True).create(directory)
    python = directory / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", requirement], check=True,
                   timeout=540)
    return python


@pytest.mark.timeout(600)
@pytest.mark.asyncio
@pytest.mark.parametrize(("extra", "script", "absent"), [
    ("node", "efs-csi-node", ["moto", "pytest", "grpc"]),
    ("controller", "efs-csi-controller", ["moto", "pytest", "grpc"]),
])
async def test_binary_runs_with_only_its_extra(extra: str, script: str, absent: list[str],
                                               wheel: Path, tmp_path: Path) -> None:
    python = await asyncio.to_thread(make_env, tmp_path / "env", f"{wheel}[{extra}]")
    for module in absent:
        found = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} leaked into the {extra} environment"
    socket = tmp_path / "csi.sock"
    log_path = tmp_path / "out.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update({"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"})
    args = ["--endpoint", f"unix://{socket}", "--node-id", "n"] if extra == "node" else [
        "--endpoint", f"unix://{socket}"]
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(python.parent / script), *args, stdout=log, stderr=asyncio.subprocess.STDOUT,
            env=env, cwd=tmp_path)
    running = RunningBinary(extra, socket, process, log_path)
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
