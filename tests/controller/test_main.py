"""The controller binary as a real process: startup checks and a misconfigured region."""

from __future__ import annotations

import subprocess
import sys

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from efs_csi import csi
from tests.conftest import StartBinary


@pytest.mark.parametrize("tags", ["novalue", "team:a(b)"])
def test_bad_tags_flag_exits_with_usage_error(tags: str) -> None:
    result = subprocess.run([sys.executable, "-m", "efs_csi_controller", "--tags", tags],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2 and "--tags" in result.stderr


@pytest.mark.asyncio
async def test_without_region_rpcs_explain_the_missing_region(binary: StartBinary) -> None:
    running = await binary("controller", env={"AWS_REGION": "", "AWS_DEFAULT_REGION": ""})
    channel = running.channel()
    try:
        request = csi.CreateVolumeRequest(
            name="pv-1", parameters={"provisioningMode": "efs-ap",
                                     "fileSystemId": "fs-12345678", "directoryPerms": "700"},
            volume_capabilities=[csi.VolumeCapability(
                mount=csi.VolumeCapabilityMountVolume(),
                access_mode=csi.VolumeCapabilityAccessMode(
                    mode=csi.VolumeCapabilityAccessModeMode.MULTI_NODE_MULTI_WRITER))])
        with pytest.raises(GRPCError) as raised:
            await csi.ControllerStub(channel).create_volume(request)
    finally:
        channel.close()
    assert raised.value.status == Status.FAILED_PRECONDITION
    assert "--region" in (raised.value.message or "")
