"""From the node's real command line to a written efs-utils.conf and its background tasks."""

from __future__ import annotations

import argparse
import asyncio
import configparser
import os
import stat
from pathlib import Path

import pytest

from efs_csi_node.__main__ import build_parser, node_config
from efs_csi_node.efs_utils.config import ConfigError, EfsUtilsSettings, Override
from efs_csi_node.efs_utils.reaper import ChildRegistry
from efs_csi_node.efs_utils.startup import (
    EfsUtilsConfig,
    efs_utils_background,
    prepare_efs_utils,
)
from efs_csi_node.efs_utils.watchdog import Backoff, WatchdogOptions


def node_args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args([
        "--node-id", "n1", "--efs-utils-config-dir", str(tmp_path / "efs"),
        "--efs-utils-legacy-config-dir", str(tmp_path / "legacy"),
        "--efs-utils-state-dir", str(tmp_path / "state"), *extra])


def efs_utils_config(tmp_path: Path, *extra: str) -> EfsUtilsConfig:
    """What the node's own command line makes of these flags."""
    args = node_args(tmp_path, *extra)
    return node_config(build_parser(), args, {}).efs_utils


def test_overrides_are_parsed_by_the_cli(tmp_path: Path) -> None:
    args = node_args(tmp_path, "--efs-utils-conf-overrides", "mount:stunnel_logs_file=/x.log")
    assert args.efs_utils_conf_overrides == (Override("mount", "stunnel_logs_file", "/x.log"),)
    assert node_args(tmp_path).efs_utils_conf_overrides == ()


@pytest.mark.parametrize("value", ["mount", "bogus:a=b", "mount:a=b\nc=d", "mount:a=1,mount:a=2"])
def test_bad_overrides_exit_2_naming_the_flag(tmp_path: Path, value: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        node_args(tmp_path, "--efs-utils-conf-overrides", value)
    assert exited.value.code == 2
    assert "--efs-utils-conf-overrides" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_flags_reach_the_written_file(tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "efs-utils.crt").write_text("ca")
    config = efs_utils_config(tmp_path, "--region", "eu-west-1", "--fips", "--efs-utils-debug",
                              "--port-range-upper-bound", "21049",
                              "--efs-utils-conf-overrides", "mount-watchdog:poll_interval_sec=2")
    prepared = await prepare_efs_utils(config, static_dir=static)
    conf = configparser.ConfigParser()
    conf.read(prepared.conf_path)
    assert prepared.conf_path == tmp_path / "efs" / "efs-utils.conf"
    assert conf.get("mount", "region") == "eu-west-1"
    assert conf.get("mount", "fips_mode_enabled") == "true"
    assert conf.get("mount", "stunnel_debug_enabled") == "true"
    assert conf.get("mount", "port_range_upper_bound") == "21049"
    assert conf.get("mount-watchdog", "poll_interval_sec") == "2"
    assert (tmp_path / "efs" / "efs-utils.crt").read_text() == "ca"


@pytest.mark.asyncio
async def test_an_impossible_port_range_is_refused_naming_the_flag(tmp_path: Path) -> None:
    config = EfsUtilsConfig(EfsUtilsSettings(port_range_upper_bound=100), tmp_path / "efs",
                            state_dir=tmp_path / "state")
    with pytest.raises(ConfigError, match="--port-range-upper-bound"):
        await prepare_efs_utils(config, static_dir=None)
    assert not (tmp_path / "efs" / "efs-utils.conf").exists()


@pytest.mark.slow  # a stand-in watchdog process
@pytest.mark.asyncio
async def test_background_tasks_run_the_watchdog_until_cancelled(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    script = bin_dir / "amazon-efs-mount-watchdog"
    # A fake watchdog (efs-utils is not installed here): records its start, then exits.
    script.write_text(f'#!/bin/sh\necho started >> "{record}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    options = WatchdogOptions(backoff=Backoff(initial=0.01, maximum=0.01),
                              env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    exits: list[int | None] = []  # the node's metric counts these (watchdog restarts)
    tasks = efs_utils_background(registry=ChildRegistry(), options=options, reap=True,
                                 on_watchdog_exit=lambda code, _delay: exits.append(code))
    assert [task.__name__ for task in tasks] == ["efs_utils_watchdog", "orphan_reaper"]
    running = [asyncio.create_task(task()) for task in tasks]
    while not record.exists() or len(record.read_text().splitlines()) < 2:  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # another process writes it; bounded by the test timeout
    for task in running:
        task.cancel()
    results = await asyncio.gather(*running, return_exceptions=True)
    assert all(isinstance(result, asyncio.CancelledError) for result in results)
    assert exits and set(exits) == {0}  # each exit told before its restart
    assert len(efs_utils_background(reap=False)) == 1


@pytest.mark.parametrize(("argv", "flag"), [
    (["--port-range-upper-bound", "100"], "--port-range-upper-bound"),
    (["--region", "not a region"], "--region"),
])
def test_the_binary_refuses_inconsistent_settings_with_exit_2(
        argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from efs_csi_node.__main__ import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:  # main() configures logging for the process; give the root logger back afterwards
        with pytest.raises(SystemExit) as exited:
            main(["--node-id", "n", "--endpoint", "unix:///nonexistent/csi.sock", *argv])
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "usage:" in error and flag in error
