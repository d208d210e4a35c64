"""The real controller binary while the EFS API is unwell, called as csi-provisioner calls it
(with a deadline on each CreateVolume):

- the endpoint refuses connections: CreateVolume is answered UNAVAILABLE before its 15 s
  deadline, naming the endpoint and the operating system's reason, and the log says the same
  (so the PVC's events tell the user what is wrong), never a bare DEADLINE_EXCEEDED;
- CreateAccessPoint throttled on every call while ten creates retry until their 5 s deadlines,
  then throttling stops: the next creates go out at once and succeed (nothing the abandoned
  calls held is kept).

The figures (seconds to the answer) are reported, never asserted.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from efs_csi import csi
from testbed.csi_builders import mount_capability
from testbed.efs_proxy import EfsProxy, FileSystemSetup
from testbed.moto_server import CREDENTIALS, REGION
from testbed.processes import RunningBinary, StartBinary

PROVISIONER_TIMEOUT = 15.0  # csi-provisioner's default --timeout


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def request(name: str, file_system_id: str) -> csi.CreateVolumeRequest:
    return csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[mount_capability()],
        parameters={"provisioningMode": "efs-ap", "fileSystemId": file_system_id,
                    "directoryPerms": "700"})


async def create(controller: RunningBinary, name: str, file_system_id: str,
                 timeout: float) -> csi.CreateVolumeResponse:
    channel = controller.channel()
    try:
        return await csi.ControllerStub(channel).create_volume(request(name, file_system_id),
                                                                timeout=timeout)
    finally:
        channel.close()


@pytest.mark.asyncio
async def test_an_unreachable_endpoint_is_unavailable_naming_it_before_the_deadline(
        binary: StartBinary, report: Callable[[str], None]) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    env = {**CREDENTIALS, "AWS_REGION": REGION, "AWS_ENDPOINT_URL": endpoint}
    controller = await binary("controller", ["--region", REGION], env)
    started = time.monotonic()
    with pytest.raises(GRPCError) as raised:
        await create(controller, "pv-unreachable", "fs-12345678", PROVISIONER_TIMEOUT)
    seconds = time.monotonic() - started
    message = raised.value.message or ""
    assert raised.value.status == Status.UNAVAILABLE, message
    assert endpoint in message and "Connection refused (ECONNREFUSED)" in message
    logged = [json.loads(line) for line in controller.logs().splitlines()
              if line.startswith("{") and "EFS call failed" in line]
    assert [entry["error"] for entry in logged] == [message]
    report(f"unreachable EFS endpoint: UNAVAILABLE after {seconds:.1f} s (deadline "
           f"{PROVISIONER_TIMEOUT:g} s): {message}")


@pytest.mark.asyncio
async def test_creates_go_out_at_once_when_throttling_stops(
        binary: StartBinary, efs_proxy: EfsProxy, file_system: FileSystemSetup,
        report: Callable[[str], None]) -> None:
    fs = file_system.file_system_id
    controller = await binary("controller", ["--region", REGION], efs_proxy.environment())
    efs_proxy.inject(throttle=1.0, operations=["CreateAccessPoint"])
    outcomes = await asyncio.gather(*(create(controller, f"pv-storm-{number}", fs, 5.0)
                                      for number in range(10)), return_exceptions=True)
    statuses = [outcome.status if isinstance(outcome, GRPCError) else outcome
                for outcome in outcomes]
    assert statuses == [Status.UNAVAILABLE] * 10  # answered, before their deadlines
    efs_proxy.clear_faults()
    efs_proxy.reset_counts()
    seconds = []
    for number in range(2):
        started = time.monotonic()
        reply = await create(controller, f"pv-after-{number}", fs, 5.0)
        seconds.append(time.monotonic() - started)
        assert reply.volume is not None
    assert efs_proxy.calls["CreateAccessPoint"] == 2  # one attempt each
    report(f"after 100% throttling of CreateAccessPoint (10 creates gave up at their 5 s "
           f"deadlines): the next two creates took {seconds[0]:.2f} s and {seconds[1]:.2f} s")
