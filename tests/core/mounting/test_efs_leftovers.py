"""What a killed mount.efs leaves behind is found by name and removed (efs_csi.mounting.
efs_leftovers), after a killed mount (EfsMounter) and at node start.

The layout is efs-utils v3.2.0's (``efs_utils_common/proxy.py``): ``fs-ID.MNT.PORT+`` (the
mount's state directory), ``stunnel-config.fs-ID.MNT.PORT``, ``~fs-ID.MNT.PORT`` until the
mount succeeds, ``fs-ID.MNT.PORT`` after. The real mount.efs against a hanging mount.nfs4 is
in tests/datapath (test_a_mount_that_times_out_leaves_nothing_behind).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from efs_csi.mounting.commands import CommandRunner, CommandTimedOut
from efs_csi.mounting.efs_leftovers import (
    TunnelState,
    file_safe_mount_point,
    find_leftovers,
    is_tunnel,
    parse_state,
    remove_leftovers,
    tunnel_pids,
)
from efs_csi.mounting.mount import EfsMounter, MountCommands

STEM = "fs-12345678.stage.a.20051"
SLEEP = "import time; time.sleep(300)"


def test_file_safe_mount_point_is_efs_utils_name() -> None:
    assert file_safe_mount_point("/var/lib/kubelet/x/globalmount") == \
        "var.lib.kubelet.x.globalmount"
    assert file_safe_mount_point("/stage/a/") == "stage.a"


@pytest.mark.parametrize(("names", "mount_point", "temporary", "others"), [
    # Killed in mount.nfs4: everything is the temporary file's.
    ([f"~{STEM}", f"{STEM}+", f"stunnel-config.{STEM}"], "/stage/a",
     [f"~{STEM}"], [f"{STEM}+", f"stunnel-config.{STEM}"]),
    # Killed before the temporary file was written.
    ([f"{STEM}+", f"stunnel-config.{STEM}"], "/stage/a",
     [], [f"{STEM}+", f"stunnel-config.{STEM}"]),
    # A mount that succeeded: the watchdog's, never ours.
    ([STEM, f"{STEM}+", f"stunnel-config.{STEM}"], "/stage/a", [], []),
    # Another mount point's leftovers are not this one's...
    ([f"~{STEM}", "~fs-12345678.stage.ab.20052"], "/stage/ab", ["~fs-12345678.stage.ab.20052"], []),
    # ...but at start every mount point's are.
    ([f"~{STEM}", "~fs-12345678.stage.ab.20052", "privateKey.pem", "efs-utils-lock"], None,
     [f"~{STEM}", "~fs-12345678.stage.ab.20052"], []),
])
def test_what_is_left_over(names: list[str], mount_point: str | None, temporary: list[str],
                           others: list[str]) -> None:
    found = find_leftovers(names, mount_point)
    assert (list(found.temporary_states), list(found.other_files)) == (temporary, others)


def test_state_files_parse_leniently() -> None:
    state = parse_state(json.dumps({"pid": 42, "files": ["/var/run/efs/stunnel-config.x"],
                                    "mountStateDir": "x+"}))
    assert state == TunnelState(42, ("/var/run/efs/stunnel-config.x",), "x+")
    assert parse_state(json.dumps({"pid": -1})).pid is None  # before efs-proxy's pid is known
    assert parse_state("{not json") == TunnelState(None, (), None)
    assert parse_state("[]") == TunnelState(None, (), None)


def test_only_tunnels_are_stopped() -> None:
    state = TunnelState(10, ("/run/efs/stunnel-config.x",), None)
    processes = {
        10: ["/usr/bin/efs-proxy", "/run/efs/stunnel-config.y", "--tls"],  # the recorded pid
        11: ["/usr/bin/efs-proxy", "/run/efs/stunnel-config.x", "--tls"],  # pid not recorded yet
        12: ["/usr/bin/stunnel", "/run/efs/stunnel-config.x"],
        13: ["/usr/bin/python3", "/run/efs/stunnel-config.x"],  # not a tunnel
        14: ["/usr/bin/efs-proxy", "/run/efs/stunnel-config.z"],  # another mount's
    }
    assert tunnel_pids(state, processes) == {10, 11, 12}
    assert not is_tunnel([])
    # A recycled pid that is no tunnel any more is left alone.
    assert tunnel_pids(TunnelState(13, (), None), processes) == set()


def fake_tunnel(directory: Path, config: Path) -> subprocess.Popen[bytes]:
    """A process whose command line is efs-proxy's, in a session of its own as mount.efs
    starts it (Python under the name efs-proxy, sleeping)."""
    binary = directory / "efs-proxy"
    if not binary.exists():
        binary.symlink_to(sys.executable)
    process = subprocess.Popen([str(binary), "-c", SLEEP, str(config)], start_new_session=True)
    # Until it has exec'd, /proc shows the parent's command line: no tunnel to find yet.
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    for _ in range(200):
        if str(binary).encode() in cmdline.read_bytes():
            break
        time.sleep(0.01)
    return process


def abandon(state_dir: Path, mount_point: Path, port: int, pid: int | None,
            *, renamed: bool = False) -> str:
    """Write what mount.efs has written when it is killed in mount.nfs4 (or, ``renamed``,
    what a finished mount has)."""
    stem = f"fs-12345678.{file_safe_mount_point(mount_point)}.{port}"
    (state_dir / f"{stem}+").mkdir()
    (state_dir / f"{stem}+" / "certificate.pem").write_text("cert")
    config = state_dir / f"stunnel-config.{stem}"
    config.write_text("[efs]\n")
    name = stem if renamed else f"~{stem}"
    (state_dir / name).write_text(json.dumps({
        "pid": pid if pid is not None else -1, "files": [str(config)],
        "mountStateDir": f"{stem}+", "mountpoint": str(mount_point)}))
    return stem


def wait_gone(process: subprocess.Popen[bytes]) -> int | None:
    try:
        return process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.slow  # real processes
def test_removal_stops_the_tunnel_and_removes_its_files(tmp_path: Path) -> None:
    state_dir = tmp_path / "efs"
    state_dir.mkdir()
    ours = tmp_path / "stage" / "a"
    other = tmp_path / "stage" / "b"
    config = state_dir / f"stunnel-config.fs-12345678.{file_safe_mount_point(ours)}.20051"
    tunnel = fake_tunnel(tmp_path, config)
    kept = fake_tunnel(tmp_path, state_dir / "unrelated")
    try:
        abandon(state_dir, ours, 20051, None)  # killed before the pid was recorded
        finished = abandon(state_dir, other, 20052, kept.pid, renamed=True)
        done = remove_leftovers(state_dir, ours)
        assert wait_gone(tunnel) == -signal.SIGKILL
        assert f"stopped tunnel {tunnel.pid}" in done
        assert sorted(os.listdir(state_dir)) == sorted(
            [finished, f"{finished}+", f"stunnel-config.{finished}"])
        assert kept.poll() is None, "another mount's tunnel was stopped"
        assert remove_leftovers(state_dir, ours) == []
    finally:
        for process in (tunnel, kept):
            process.kill()
            process.wait()


@pytest.mark.slow  # real processes
def test_at_start_every_abandoned_mount_goes(tmp_path: Path) -> None:
    state_dir = tmp_path / "efs"
    state_dir.mkdir()
    tunnels = []
    try:
        for index, name in enumerate(("a", "b")):
            mount_point = tmp_path / name
            safe = file_safe_mount_point(mount_point)
            config = state_dir / f"stunnel-config.fs-12345678.{safe}.{20051 + index}"
            tunnels.append(fake_tunnel(tmp_path, config))
            abandon(state_dir, mount_point, 20051 + index, tunnels[-1].pid)
        (state_dir / "privateKey.pem").write_text("key")  # shared by every mount: kept
        remove_leftovers(state_dir)
        assert [wait_gone(tunnel) for tunnel in tunnels] == [-signal.SIGKILL] * 2
        assert os.listdir(state_dir) == ["privateKey.pem"]
    finally:
        for tunnel in tunnels:
            tunnel.kill()
            tunnel.wait()


# A mount helper that does what mount.efs does before mount.nfs4 (state, config, a tunnel in a
# session of its own), then hangs in "mount.nfs4" as against a server that never answers.
HANGING_MOUNT = """#!{python}
import json, os, subprocess, sys, time
state_dir, target = {state_dir!r}, sys.argv[-1]
stem = "fs-12345678." + os.path.abspath(target).replace(os.sep, ".").lstrip(".") + ".20060"
os.mkdir(os.path.join(state_dir, stem + "+"))
config = os.path.join(state_dir, "stunnel-config." + stem)
open(config, "w").write("[efs]\\n")
temporary = os.path.join(state_dir, "~" + stem)
json.dump({{"pid": -1, "files": [config], "mountStateDir": stem + "+"}}, open(temporary, "w"))
tunnel = subprocess.Popen([{tunnel!r}, "-c", "import time; time.sleep(300)", config],
                          start_new_session=True)
json.dump({{"pid": tunnel.pid, "files": [config], "mountStateDir": stem + "+"}},
          open(temporary, "w"))
open({pid_file!r}, "w").write(str(tunnel.pid))
time.sleep(300)
"""


@pytest.mark.slow  # real processes
@pytest.mark.asyncio
async def test_a_mount_killed_on_its_time_limit_leaves_nothing(tmp_path: Path) -> None:
    state_dir, bin_dir = tmp_path / "efs", tmp_path / "bin"
    state_dir.mkdir()
    bin_dir.mkdir()
    (tmp_path / "efs-proxy").symlink_to(sys.executable)
    mount = bin_dir / "mount"
    pid_file = tmp_path / "tunnel.pid"
    mount.write_text(HANGING_MOUNT.format(python=sys.executable, state_dir=str(state_dir),
                                          tunnel=str(tmp_path / "efs-proxy"),
                                          pid_file=str(pid_file)))
    mount.chmod(mount.stat().st_mode | stat.S_IEXEC)
    runner = CommandRunner(env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    mounter = EfsMounter(MountCommands(runner, mount_timeout=3.0, unmount_timeout=1.0),
                         state_dir=state_dir)
    with pytest.raises(CommandTimedOut):
        await mounter.mount("fs-12345678", "/", tmp_path / "target", ["tls"])
    tunnel = int(pid_file.read_text())
    assert os.listdir(state_dir) == []
    for _ in range(50):  # killed; its zombie is reaped by whoever adopted it
        try:
            os.kill(tunnel, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{tunnel}/stat").read_text().split(")")[-1].split()[0] == "Z":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the tunnel {tunnel} still runs")
