"""The TLS policy through the real ``efs-csi-node`` process (efs backend) and its gRPC socket.

The node runs as it runs in the image, with ``mount`` on its PATH replaced by a recorder: the
one fake here, because this machine has no NFS client to mount EFS with (the recorder writes
each command line and succeeds without mounting, so nothing is left behind). Everything else is
real: the flags, efs-utils.conf written to a temporary directory, the gRPC server, the option
building and the logs. Checked: a tenant's TLS-weakening options are INVALID_ARGUMENT naming
the option and the flag and never reach ``mount``; an operator's allowance lets exactly the
named ones through; every mount's final options are logged at info; a weakening override of
efs-utils.conf stops the node at start with exit 2 unless allowed.
"""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from efs_csi import csi
from testbed.processes import RunningBinary, StartBinary

pytestmark = pytest.mark.slow  # real processes throughout

FS = "fs-0123456789abcdef0"
AP = "fsap-0123456789abcdef0"
SECRET = "NODE-SEKRIT-31"


def recording_path(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose ``mount`` and ``umount`` record their arguments and succeed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "mount-calls"
    for name in ("mount", "umount"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{record}"\n')
        script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}, record


def node_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["--mount-backend", "efs", "--availability-zone", "us-east-1a",
            "--region", "us-east-1", "--remove-not-ready-taint=false",
            "--efs-utils-config-dir", str(tmp_path / "efs-utils"),
            "--efs-utils-legacy-config-dir", str(tmp_path / "legacy"), *extra]


def stage_request(tmp_path: Path, name: str, *, handle: str = FS,
                  flags: tuple[str, ...] = (),
                  context: dict[str, str] | None = None) -> csi.NodeStageVolumeRequest:
    return csi.NodeStageVolumeRequest(
        volume_id=handle, staging_target_path=str(tmp_path / "staging" / name),
        volume_capability=csi.VolumeCapability(
            mount=csi.VolumeCapabilityMountVolume(mount_flags=list(flags)),
            access_mode=csi.VolumeCapabilityAccessMode(
                mode=csi.VolumeCapabilityAccessModeMode.MULTI_NODE_MULTI_WRITER)),
        volume_context=context or {}, secrets={"token": SECRET})


async def stage(node: RunningBinary, request: csi.NodeStageVolumeRequest) -> GRPCError | None:
    channel = node.channel()
    try:
        await csi.NodeStub(channel).node_stage_volume(request, timeout=30)
    except GRPCError as error:
        return error
    finally:
        channel.close()
    return None


def efs_mounts(record: Path) -> list[str]:
    """The ``-o`` option lists of the ``mount -t efs`` calls made so far ('' for none)."""
    if not record.exists():
        return []
    return [line.split(" -o ", 1)[1].split(" ")[0] if " -o " in line else ""
            for line in record.read_text().splitlines() if line.startswith("mount -t efs")]


def log_events(node: RunningBinary, event: str) -> list[dict[str, Any]]:
    events = []
    for line in node.logs().splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if parsed.get("event") == event:
            events.append(parsed)
    return events


# (name, flags, volume context, the option the error names, the table's name for it)
REFUSED = [
    ("verify", ("tls,verify=0",), None, "'verify=0'", "verify"),
    ("cafile", ("cafile=/var/lib/kubelet/pods/evil/ca.pem",), None,
     "'cafile=/var/lib/kubelet/pods/evil/ca.pem'", "cafile"),
    ("netns", ("netns=/proc/1/ns/net",), None, "'netns=/proc/1/ns/net'", "netns"),
    ("noocsp", ("noocsp",), None, "'noocsp'", "noocsp"),
    ("plaintext", (), {"encryptInTransit": "false"}, 'encryptInTransit: "false"', "notls"),
    ("notls", ("notls",), {"encryptInTransit": "false"}, "'notls'", "notls"),
]


@pytest.mark.asyncio
async def test_weakening_options_are_refused_through_grpc_and_never_mounted(
        binary: StartBinary, tmp_path: Path) -> None:
    env, record = recording_path(tmp_path)
    node = await binary("node", node_args(tmp_path), env=env)
    for name, flags, context, given, allow in REFUSED:
        error = await stage(node, stage_request(tmp_path, name, flags=flags, context=context))
        assert error is not None and error.status is Status.INVALID_ARGUMENT, (name, error)
        assert given in (error.message or ""), error.message
        assert f"--allow-insecure-mount-options={allow}" in (error.message or "")
        assert f"node.allowInsecureMountOptions: [{allow}]" in (error.message or "")
    assert efs_mounts(record) == []  # nothing reached mount.efs
    # What does not weaken TLS is mounted, and its final options are logged at info.
    assert await stage(node, stage_request(tmp_path, "ok", handle=f"{FS}::{AP}",
                                           flags=("iam", "tlsport=20100", "verify=2"))) is None
    expected = f"tls,accesspoint={AP},iam,tlsport=20100,verify=2"
    assert efs_mounts(record) == [expected]
    assert await node.stop() == 0
    logged = log_events(node, "mount options")
    assert [(event["level"], event["volume_id"], event["options"]) for event in logged] == [
        ("info", f"{FS}::{AP}", expected)]
    assert SECRET not in node.logs()


@pytest.mark.asyncio
async def test_an_operator_allows_exactly_the_options_it_names(binary: StartBinary,
                                                               tmp_path: Path) -> None:
    env, record = recording_path(tmp_path)
    node = await binary("node", node_args(tmp_path, "--allow-insecure-mount-options",
                                          "notls,verify"), env=env)
    assert await stage(node, stage_request(tmp_path, "verify", flags=("verify=0",))) is None
    assert await stage(node, stage_request(tmp_path, "plaintext",
                                           context={"encryptInTransit": "false"})) is None
    error = await stage(node, stage_request(tmp_path, "cafile", flags=("cafile=/x.pem",)))
    assert error is not None and error.status is Status.INVALID_ARGUMENT
    assert "--allow-insecure-mount-options=cafile" in (error.message or "")
    assert efs_mounts(record) == ["tls,verify=0", ""]
    assert await node.stop() == 0
    options = [event["options"] for event in log_events(node, "mount options")]
    assert options == ["tls,verify=0", ""]
    warnings = [event["detail"] for event in log_events(node, "mount options adjusted")]
    assert any("'verify=0' weakens TLS" in warning for warning in warnings), warnings
    assert any('encryptInTransit: "false" weakens TLS' in warning for warning in warnings)


@pytest.mark.asyncio
async def test_a_plaintext_mount_when_allowed_has_no_tls_option(binary: StartBinary,
                                                                tmp_path: Path) -> None:
    """With notls allowed, encryptInTransit=false mounts without any option, as the reference
    driver does (mount.efs then mounts NFS directly)."""
    env, record = recording_path(tmp_path)
    node = await binary("node", node_args(tmp_path, "--allow-insecure-mount-options=notls"),
                        env=env)
    assert await stage(node, stage_request(tmp_path, "plain",
                                           context={"encryptInTransit": "false"})) is None
    assert record.read_text().splitlines() == [
        f"mount -t efs {FS}:/ {tmp_path / 'staging' / 'plain'}"]
    assert await node.stop() == 0


async def run_node(tmp_path: Path, *extra: str) -> tuple[int, str]:
    """The node binary until it exits (or is stopped once serving): exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "efs_csi_node", "--endpoint",
        f"unix://{tmp_path / 'csi.sock'}", "--node-id", "n", *node_args(tmp_path, *extra),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"})
    try:
        for _ in range(600):
            if process.returncode is not None or (tmp_path / "csi.sock").exists():
                break
            await asyncio.sleep(0.05)
        if process.returncode is None:
            process.terminate()
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.mark.asyncio
@pytest.mark.parametrize("override", [
    "mount:stunnel_check_cert_hostname=false",
    "mount:stunnel_cafile=/etc/ssl/certs/ca-certificates.crt",
    "mount:dns_name_suffix=example.com",
])
async def test_a_weakening_override_stops_the_node_with_exit_2(tmp_path: Path,
                                                               override: str) -> None:
    code, output = await run_node(tmp_path, "--efs-utils-conf-overrides", override)
    assert code == 2, output
    assert "usage:" in output and override in output
    assert "--allow-insecure-efs-utils-conf" in output
    assert "node.allowInsecureEfsUtilsConf: true" in output
    assert not (tmp_path / "efs-utils" / "efs-utils.conf").exists()


@pytest.mark.asyncio
async def test_an_allowed_weakening_override_is_written_and_warned_about(tmp_path: Path) -> None:
    code, output = await run_node(tmp_path, "--efs-utils-conf-overrides",
                                  "mount:stunnel_check_cert_hostname=false",
                                  "--allow-insecure-efs-utils-conf")
    assert code == 0, output
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(tmp_path / "efs-utils" / "efs-utils.conf")
    assert conf.get("mount", "stunnel_check_cert_hostname") == "false"
    warnings = [json.loads(line) for line in output.splitlines()
                if "weaken TLS" in line and line.startswith("{")]
    assert [w["level"] for w in warnings] == ["warning"], output
    assert "mount:stunnel_check_cert_hostname=false" in warnings[0]["overrides"][0]


@pytest.mark.asyncio
async def test_an_unknown_name_in_the_allowance_is_a_usage_error(tmp_path: Path) -> None:
    code, output = await run_node(tmp_path, "--allow-insecure-mount-options", "notls,tlsport")
    assert code == 2, output
    assert "--allow-insecure-mount-options" in output and "tlsport" in output
