"""The controller's command line: flags and environment become one ``ControllerConfig``, bad
settings exit 2 with a usage line, and the real process explains a missing region."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from efs_csi import csi
from efs_csi.rpc.server import Endpoint
from efs_csi_controller.config import ControllerConfig, RootDirectories
from testbed.processes import StartBinary
from tests.support.startup import start_up


def config(args: list[str], environ: dict[str, str] | None = None) -> ControllerConfig:
    outcome = start_up("efs-csi-controller", args, environ)
    assert outcome.accepted, outcome.error
    assert isinstance(outcome.config, ControllerConfig)
    return outcome.config


def test_defaults() -> None:
    built = config([])
    assert built.serving.endpoint == Endpoint(path=Path("/csi/csi.sock"))
    assert (built.region, built.instance_metadata_disabled, built.kube) == (None, False, None)
    assert built.extra_tags == {} and built.root_directories is None
    assert (built.access_point_limit, built.adaptive_retry_mode) == (10000, True)
    # The value every cluster shared before --cluster-id; the chart always passes its own.
    assert (built.cluster_id, built.allow_shared_root_directories) == ("true", False)


@pytest.mark.parametrize(("args", "environ", "region"), [
    (["--region", "eu-west-1"], {"AWS_REGION": "x", "AWS_DEFAULT_REGION": "y"}, "eu-west-1"),
    ([], {"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "y"}, "us-west-2"),
    ([], {"AWS_DEFAULT_REGION": "sa-east-1"}, "sa-east-1"),
    ([], {"AWS_REGION": "", "AWS_DEFAULT_REGION": ""}, None),  # instance metadata then
])
def test_region_comes_from_the_flag_then_the_sdk_environment(
        args: list[str], environ: dict[str, str], region: str | None) -> None:
    assert config(args, environ).region == region


def test_the_environment_is_read_once_into_the_configuration() -> None:
    built = config([], {"CSI_ENDPOINT": "tcp://127.0.0.1:9000",
                        "AWS_EC2_METADATA_DISABLED": "TRUE"})
    assert built.serving.endpoint == Endpoint(host="127.0.0.1", port=9000)
    assert built.instance_metadata_disabled


def test_flags_become_typed_settings(tmp_path: Path) -> None:
    built = config(["--tags", r"team:storage cost\ center:a\:b", "--access-point-limit=20",
                    "--gid-inventory-max-age=0", "--adaptive-retry-mode=false",
                    "--delete-access-point-root-dir", "--mount-backend=local",
                    f"--local-root={tmp_path}", "--http-endpoint=127.0.0.1:8080",
                    "--shutdown-grace-period=5", "--cluster-id=prod-eu-west-1",
                    "--allow-shared-root-directories=true"])
    assert built.extra_tags == {"team": "storage", "cost center": "a:b"}
    assert (built.access_point_limit, built.gid_inventory_max_age) == (20, 0.0)
    assert built.adaptive_retry_mode is False
    assert built.root_directories == RootDirectories("local", tmp_path)
    assert built.serving.http_endpoint == ("127.0.0.1", 8080)
    assert built.serving.shutdown_grace_period == 5.0
    assert (built.cluster_id, built.allow_shared_root_directories) == ("prod-eu-west-1", True)


@pytest.mark.parametrize(("args", "named"), [
    (["--tags", "novalue"], "--tags"),
    (["--tags", "team:a(b)"], "--tags"),
    (["--mount-backend", "local"], "--local-root"),
    (["--cluster-id", ""], "--cluster-id"),
    (["--cluster-id", "a,b"], "--cluster-id"),
    (["--tags", "efs.csi.aws.com/cluster:x"], "--cluster-id"),
])
def test_bad_settings_exit_2_with_a_usage_line(args: list[str], named: str) -> None:
    outcome = start_up("efs-csi-controller", args)
    assert outcome.status == 2
    assert outcome.error.startswith("usage: efs-csi-controller") and named in outcome.error


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
