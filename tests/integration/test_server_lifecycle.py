"""The server's life on a real process: drain on SIGTERM, stale sockets, unknown methods."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import grpc
import pytest
from grpclib.client import Channel

from efs_csi import csi
from testbed.processes import MODULES, StartBinary

SECRET = "TOP-SECRET-VALUE-9"


async def wait_for_socket(path: Path, process: asyncio.subprocess.Process) -> None:
    for _ in range(400):
        if path.exists():
            return
        if process.returncode is not None:
            raise AssertionError(f"server exited early with {process.returncode}")
        await asyncio.sleep(0.025)
    raise AssertionError("socket never appeared")


@pytest.mark.asyncio
async def test_sigterm_lets_in_flight_rpc_finish_then_exits_0(tmp_path: Path) -> None:
    sock = tmp_path / "csi.sock"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.slow_server", f"unix://{sock}", "1.5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await wait_for_socket(sock, process)
        channel = Channel(path=str(sock))
        try:
            slow_call = asyncio.create_task(
                csi.IdentityStub(channel).probe(csi.ProbeRequest(), timeout=20))
            assert process.stdout is not None
            started = await asyncio.wait_for(process.stdout.readline(), 20)
            assert started == b"probe in flight\n"  # the server is running the call now
            process.send_signal(signal.SIGTERM)
            reply = await slow_call
        finally:
            channel.close()
        assert reply.ready is True
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
        assert process.returncode == 0, stderr.decode()
        assert not sock.exists()
        assert b"draining" in stderr
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["controller", "node"])
async def test_binary_starts_over_a_stale_socket_and_cleans_up(
        kind: str, binary: StartBinary, tmp_path: Path) -> None:
    directory = tmp_path / f"{kind}-0"
    directory.mkdir()
    stale = directory / "csi.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(stale))  # a socket file nobody listens on, as after a crash
    leftover.close()
    assert stale.exists()
    running = await binary(kind)
    assert running.socket == stale
    assert await running.stop() == 0
    assert not stale.exists()


@pytest.mark.asyncio
async def test_refuses_to_steal_a_live_socket(binary: StartBinary, tmp_path: Path) -> None:
    first = await binary("node")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "efs_csi_node", "--endpoint", f"unix://{first.socket}",
        "--node-id", "n",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode != 0
    assert b"another process is serving" in stderr
    assert first.socket.exists()


def grpcio_call(socket_path: Path, method: str) -> grpc.StatusCode:
    with grpc.insecure_channel(f"unix://{socket_path}") as channel:
        call = channel.unary_unary(method, request_serializer=bytes,
                                   response_deserializer=bytes)
        try:
            call(b"", timeout=10)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["controller", "node"])
@pytest.mark.parametrize("method", ["/csi.v1.Identity/NoSuchMethod",
                                    "/csi.v1.NoSuchService/Anything",
                                    "/csi.v1.GroupController/GroupControllerGetCapabilities",
                                    "/csi.v1.SnapshotMetadata/GetMetadataAllocated"])
async def test_grpcio_client_gets_unimplemented(kind: str, method: str,
                                                binary: StartBinary) -> None:
    running = await binary(kind)
    code = await asyncio.to_thread(grpcio_call, running.socket, method)
    assert code == grpc.StatusCode.UNIMPLEMENTED
    # ... and a known method still works on the same server.
    assert await asyncio.to_thread(grpcio_call, running.socket,
                                   "/csi.v1.Identity/Probe") == grpc.StatusCode.OK


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["controller", "node"])
async def test_secrets_never_reach_the_logs(kind: str, binary: StartBinary) -> None:
    running = await binary(kind, ["--log-level", "debug"])
    channel = running.channel()
    try:
        if kind == "node":
            stub = csi.NodeStub(channel)
            call = stub.node_stage_volume(csi.NodeStageVolumeRequest(
                volume_id="fs-0123abcd", staging_target_path="/nonexistent/staging",
                secrets={"awsRoleArn": SECRET, "nested": f"secrets={SECRET}"}))
        else:
            call = csi.ControllerStub(channel).create_volume(csi.CreateVolumeRequest(
                name="pvc-1", parameters={"provisioningMode": "efs-ap"},
                secrets={"awsRoleArn": SECRET}))
        with pytest.raises(Exception):  # noqa: B017 - any refusal is fine here
            await call
    finally:
        channel.close()
    assert await running.stop() == 0
    logs = running.logs()
    assert '"method"' in logs  # the canonical line was written
    assert SECRET not in logs


@pytest.mark.asyncio
async def test_canonical_line_has_method_code_duration(binary: StartBinary) -> None:
    running = await binary("node")
    channel = running.channel()
    try:
        await csi.IdentityStub(channel).get_plugin_info(csi.GetPluginInfoRequest())
    finally:
        channel.close()
    await running.stop()
    import json

    lines = [json.loads(line) for line in running.logs().splitlines() if line.startswith("{")]
    rpc_lines = [line for line in lines if line.get("method") == "GetPluginInfo"]
    assert len(rpc_lines) == 1
    assert rpc_lines[0]["code"] == "OK" and rpc_lines[0]["duration_s"] >= 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.asyncio
async def test_tcp_endpoint_serves_and_stops_cleanly() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "efs_csi_node", "--endpoint", f"tcp://127.0.0.1:{port}",
        "--node-id", "n",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        info = None
        for _ in range(200):
            channel = Channel("127.0.0.1", port)
            try:
                info = await csi.IdentityStub(channel).get_plugin_info(
                    csi.GetPluginInfoRequest(), timeout=2)
                break
            except OSError:
                await asyncio.sleep(0.05)
            finally:
                channel.close()
        assert info is not None and info.name == "efs.csi.aws.com"
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
        assert process.returncode == 0, stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["controller", "node"])
@pytest.mark.parametrize("obstacle", ["file", "directory", "parent is a file"])
async def test_something_else_at_the_socket_path_is_a_one_line_error_exit_2(
        kind: str, obstacle: str, tmp_path: Path) -> None:
    path = tmp_path / "csi.sock"
    if obstacle == "file":
        path.write_text("not a socket")
    elif obstacle == "directory":
        path.mkdir()
    else:
        (tmp_path / "plugins").write_text("a file where a directory should be")
        path = tmp_path / "plugins" / "csi.sock"
    args = ["--endpoint", f"unix://{path}", "--region", "us-east-1"]
    if kind == "node":
        args += ["--node-id", "n", "--mount-backend", "local", "--local-root", str(tmp_path),
                 "--availability-zone", "us-east-1a"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", MODULES[kind], *args, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"})
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    text = stderr.decode()
    last = text.strip().splitlines()[-1]
    assert process.returncode == 2, text
    assert "Traceback" not in text
    assert last.startswith(f"efs-csi-{kind}: error: ") and str(path) in last
    if obstacle == "file":
        assert path.read_text() == "not a socket"  # never removed
