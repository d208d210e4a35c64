"""The command line both binaries share (efs_csi.cli), through each binary's own parser: usage
errors exit 2 naming the flag, --version, the reference driver's boolean spellings, numbers."""

from __future__ import annotations

import pytest

from efs_csi_controller.__main__ import build_parser as controller_parser
from efs_csi_node.__main__ import build_parser as node_parser


@pytest.mark.parametrize("parser", [controller_parser, node_parser])
@pytest.mark.parametrize("argv", [["--no-such-flag"], ["--endpoint", "http://x"],
                                  ["--log-format", "xml"], ["--log-level", "loud"],
                                  ["--http-endpoint", "nope"]])
def test_bad_flags_exit_2_with_usage(parser, argv, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as caught:
        parser().parse_args(argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("parser", [controller_parser, node_parser])
def test_version_exits_0(parser, capsys) -> None:  # type: ignore[no-untyped-def]
    from efs_csi import __version__

    with pytest.raises(SystemExit) as caught:
        parser().parse_args(["--version"])
    assert caught.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_bool_flags_accept_reference_spellings() -> None:
    parser = controller_parser()
    assert parser.parse_args(["--adaptive-retry-mode=false"]).adaptive_retry_mode is False
    assert parser.parse_args(["--delete-access-point-root-dir"]).delete_access_point_root_dir
    assert parser.parse_args([]).adaptive_retry_mode is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--adaptive-retry-mode=maybe"])


def test_gid_inventory_max_age_is_seconds_not_minutes() -> None:
    assert controller_parser().parse_args([]).gid_inventory_max_age == 5.0
    assert controller_parser().parse_args(["--gid-inventory-max-age=0"]).gid_inventory_max_age \
        == 0.0


@pytest.mark.parametrize(("parser", "argv"), [
    (controller_parser, ["--access-point-limit", "0"]),
    (controller_parser, ["--access-point-limit", "many"]),
    (controller_parser, ["--gid-inventory-max-age", "-1"]),
    (controller_parser, ["--gid-inventory-max-age", "nan"]),
    (controller_parser, ["--gid-inventory-max-age", "inf"]),
    (node_parser, ["--max-inflight-mount-calls", "-1"]),
    (node_parser, ["--mount-timeout", "nan"]),
    (node_parser, ["--vol-metrics-fs-rate-limit", "0"]),
    (node_parser, ["--shutdown-grace-period", "-5"]),
])
def test_bad_numbers_exit_2_naming_the_flag(parser, argv, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as caught:
        parser().parse_args(argv)
    assert caught.value.code == 2
    assert argv[0] in capsys.readouterr().err
