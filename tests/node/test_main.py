"""The node's command line: flags and environment become one ``NodeConfig``; bad settings,
from a flag or from the environment, exit 2 with a usage line naming the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from efs_csi.rpc.server import Endpoint
from efs_csi_node.__main__ import build_parser
from efs_csi_node.config import NodeConfig
from efs_csi_node.efs_utils.config import Override
from efs_csi_node.topology import ImdsSettings
from efs_csi_node.volume_stats import CollectorSettings
from tests.support.startup import start_up


def config(args: list[str], environ: dict[str, str] | None = None) -> NodeConfig:
    outcome = start_up("efs-csi-node", args, environ)
    assert outcome.accepted, outcome.error
    assert isinstance(outcome.config, NodeConfig)
    return outcome.config


def test_defaults() -> None:
    built = config(["--node-id", "n1"])
    assert built.node_id == "n1" and built.availability_zone is None
    assert built.serving.endpoint == Endpoint(path=Path("/csi/csi.sock"))
    assert built.imds == ImdsSettings() and built.kube is None
    assert built.volume_stats is None and built.remove_not_ready_taint
    assert (built.mount_backend, built.local_root) == ("efs", None)
    assert built.efs_utils.config_dir == Path("/var/amazon/efs")
    assert built.efs_utils.legacy_config_dir == Path("/etc/amazon/efs-legacy")
    assert built.efs_utils.settings.port_range_upper_bound == 20449


def test_the_environment_is_read_once_into_the_configuration() -> None:
    built = config([], {"CSI_NODE_NAME": "from-env", "CSI_ENDPOINT": "unix:///plugin/csi.sock",
                        "AWS_REGION": "eu-west-1", "AWS_USE_FIPS_ENDPOINT": "true",
                        "PORT_RANGE_UPPER_BOUND": "21000", "DISABLE_TAINT_WATCHER": "1",
                        "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9/"})
    assert built.node_id == "from-env"
    assert built.serving.endpoint == Endpoint(path=Path("/plugin/csi.sock"))
    assert built.region == built.efs_utils.settings.region == "eu-west-1"
    assert built.efs_utils.settings.fips
    assert built.efs_utils.settings.port_range_upper_bound == 21000
    assert not built.remove_not_ready_taint
    assert built.imds == ImdsSettings(endpoint="http://127.0.0.1:9", disabled=True)


def test_flags_become_typed_settings(tmp_path: Path) -> None:
    built = config(["--node-id", "n", "--availability-zone", "us-east-1c",
                    "--mount-backend", "local", "--local-root", str(tmp_path),
                    "--vol-metrics-opt-in", "--vol-metrics-refresh-period", "2",
                    "--vol-metrics-fs-rate-limit", "3", "--vol-metrics-walk-concurrency", "4",
                    "--max-inflight-mount-calls", "7", "--volume-attach-limit", "9",
                    "--mount-timeout", "11", "--unmount-timeout", "12",
                    "--efs-utils-conf-overrides", "mount:stunnel_logs_file=/x.log",
                    "--efs-utils-legacy-config-dir", ""])
    assert built.availability_zone == "us-east-1c"
    assert (built.mount_backend, built.local_root) == ("local", tmp_path)
    assert built.volume_stats == CollectorSettings(refresh_period_s=120, walks_per_file_system=3,
                                                   walk_concurrency=4)
    assert (built.max_inflight_mount_calls, built.volume_attach_limit) == (7, 9)
    assert (built.mount_timeout, built.unmount_timeout) == (11.0, 12.0)
    assert built.efs_utils.settings.overrides == (Override("mount", "stunnel_logs_file",
                                                           "/x.log"),)
    assert built.efs_utils.legacy_config_dir is None


@pytest.mark.parametrize(("args", "environ", "named"), [
    ([], {}, "--node-id"),
    (["--node-id", "n", "--mount-backend", "local"], {}, "--local-root"),
    (["--node-id", "n", "--port-range-upper-bound", "100"], {}, "--port-range-upper-bound"),
    (["--node-id", "n"], {"PORT_RANGE_UPPER_BOUND": "abc"}, "--port-range-upper-bound"),
    (["--node-id", "n", "--vol-metrics-walk-concurrency", "0"], {},
     "--vol-metrics-walk-concurrency"),
    (["--node-id", "n", "--vol-metrics-walk-concurrency", "257"], {},
     "--vol-metrics-walk-concurrency"),
    (["--node-id", "n", "--vol-metrics-walk-concurrency", "many"], {},
     "--vol-metrics-walk-concurrency"),
])
def test_bad_settings_exit_2_with_a_usage_line_naming_the_flag(
        args: list[str], environ: dict[str, str], named: str) -> None:
    outcome = start_up("efs-csi-node", args, environ)
    assert outcome.status == 2
    assert outcome.error.startswith("usage: efs-csi-node") and named in outcome.error


def test_help_works_whatever_the_environment_holds(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad PORT_RANGE_UPPER_BOUND used to break even --help (the default was converted while
    the parser was built); argparse now converts it only when the flag is not given."""
    with pytest.raises(SystemExit) as exited:
        build_parser({"PORT_RANGE_UPPER_BOUND": "abc"}).parse_args(["--help"])
    assert exited.value.code == 0
    assert "--port-range-upper-bound" in capsys.readouterr().out


def test_walk_concurrency_defaults_to_16_and_accepts_1_to_256() -> None:
    parser = build_parser()
    assert parser.parse_args([]).vol_metrics_walk_concurrency == 16
    assert parser.parse_args(["--vol-metrics-walk-concurrency", "1"]) \
        .vol_metrics_walk_concurrency == 1
    assert parser.parse_args(["--vol-metrics-walk-concurrency=256"]) \
        .vol_metrics_walk_concurrency == 256
