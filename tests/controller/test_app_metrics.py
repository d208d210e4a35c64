"""The real controller binary with --http-endpoint, backed by moto through the EFS proxy:
RPC, AWS API and provisioning series move as real CreateVolume calls run."""

from __future__ import annotations

import pytest
from grpclib.exceptions import GRPCError

from efs_csi import csi
from testbed.efs_proxy import EfsProxy, make_file_system
from testbed.processes import StartBinary
from tests.support.scrape import scrape, value


def create_request(name: str, file_system_id: str) -> csi.CreateVolumeRequest:
    return csi.CreateVolumeRequest(
        name=name,
        parameters={"provisioningMode": "efs-ap", "fileSystemId": file_system_id,
                    "directoryPerms": "700", "gidRangeStart": "1000", "gidRangeEnd": "1999"},
        volume_capabilities=[csi.VolumeCapability(
            mount=csi.VolumeCapabilityMountVolume(),
            access_mode=csi.VolumeCapabilityAccessMode(
                mode=csi.VolumeCapabilityAccessModeMode.MULTI_NODE_MULTI_WRITER))])


@pytest.mark.asyncio
async def test_controller_binary_serves_rpc_aws_and_provisioning_series(
    binary: StartBinary, efs_proxy: EfsProxy, unused_tcp_port: int
) -> None:
    fs = make_file_system(efs_proxy.url).file_system_id
    port = unused_tcp_port
    running = await binary("controller", ["--http-endpoint", f"127.0.0.1:{port}",
                                          "--region", "us-east-1"],
                           env=efs_proxy.environment())
    channel = running.channel()
    try:
        stub = csi.ControllerStub(channel)
        await stub.create_volume(create_request("pv-a", fs))
        await stub.create_volume(create_request("pv-b", fs))
        efs_proxy.inject(fail_with=(403, "AccessDeniedException"),
                         operations=["CreateAccessPoint"])
        with pytest.raises(GRPCError):
            await stub.create_volume(create_request("pv-c", fs))
    finally:
        channel.close()
    samples = await scrape(port)
    assert value(samples, "efs_csi_rpc_requests_total", method="CreateVolume", code="OK") == 2
    assert sum(v for (name, labels), v in samples.items()
               if name == "efs_csi_rpc_requests_total"
               and ("method", "CreateVolume") in labels and ("code", "OK") not in labels) == 1
    assert value(samples, "aws_efs_csi_api_request_duration_seconds_count",
                 request="CreateAccessPoint") >= 3
    assert value(samples, "aws_efs_csi_api_request_errors_total", request="CreateAccessPoint",
                 code="AccessDeniedException") >= 1
    assert value(samples, "efs_csi_access_points", file_system_id=fs) == 2
    assert value(samples, "efs_csi_gids_in_use", file_system_id=fs) == 2
    assert value(samples, "efs_csi_gid_range_size", file_system_id=fs) == 1000
    assert value(samples, "efs_csi_access_point_creates_in_flight", file_system_id=fs) == 0
