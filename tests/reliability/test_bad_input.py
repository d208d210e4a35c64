"""Bad input: hypothesis sends random and malformed requests to every RPC of both binaries.

One controller and one node run for the whole module (plain subprocesses started by a
module-scoped sync fixture; each test opens its own channels on its own event loop). For
every example:

- the answer is a well-formed gRPC status, never a dropped connection or stream;
- clearly invalid input (an independent oracle below decides: malformed volume ids, relative
  or empty paths, NUL bytes, mount flags holding an empty option / whitespace / control
  characters, unknown access modes, missing required fields, unknown volume-context keys)
  is refused with
  a status other than UNKNOWN/INTERNAL (or, where the spec makes the call idempotent, OK),
  and costs no EFS API call (the EfsProxy's counters do not move);
- nothing is mounted anywhere but the staging/target path the request named (the mount table
  is compared before and after; anything new is unmounted again);
- the binary still answers Probe afterwards.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.encoding.base import CodecBase
from grpclib.exceptions import GRPCError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efs_csi import csi
from efs_csi.mounting.mountinfo import read_mount_table
from testbed.efs_proxy import EfsProxy, make_file_system
from testbed.moto_server import MotoEndpoint
from testbed.processes import MODULES
from tests.reliability.support import capability, efs_client, unmount_everything_under
from tests.support.ci import require_root

Mode = csi.VolumeCapabilityAccessModeMode
EXAMPLES = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
NEVER = frozenset({Status.UNKNOWN})
NOT_FOR_INVALID = frozenset({Status.UNKNOWN, Status.INTERNAL})
_unique = count()


# the served binaries -----------------------------------------------------------------------


@dataclass
class Served:
    work: Path
    proxy: EfsProxy
    file_system_id: str
    access_point_id: str
    staged: Path  # the real access point, staged once for the whole module
    controller: subprocess.Popen[bytes]
    node: subprocess.Popen[bytes]

    @property
    def base(self) -> Path:
        return self.work / "kubelet"

    def fresh_dir(self) -> Path:
        return self.base / f"d{next(_unique)}"

    def socket(self, kind: str) -> str:
        return str(self.work / kind / "csi.sock")


def _run_async(coroutine_factory: Callable[[], Awaitable[None]]) -> None:
    """Run a coroutine on a private loop in a thread (module fixtures are sync)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coroutine_factory())  # type: ignore[arg-type]
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    if failure:
        raise failure[0]


async def _wait_ready(socket: str, process: subprocess.Popen[bytes], log: Path) -> None:
    end = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"exited {process.returncode}: {log.read_text()}")
        if os.path.exists(socket):
            channel = Channel(path=socket)
            try:
                if (await csi.IdentityStub(channel).probe(csi.ProbeRequest(), timeout=2)).ready:
                    return
            except (TimeoutError, OSError):
                pass
            finally:
                channel.close()
        if time.monotonic() > end:
            raise TimeoutError(log.read_text())
        await asyncio.sleep(0.05)


def _popen(kind: str, work: Path, env: dict[str, str], args: list[str]) -> subprocess.Popen[bytes]:
    directory = work / kind
    directory.mkdir()
    with (directory / f"{kind}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", MODULES[kind], "--endpoint", f"unix://{directory / 'csi.sock'}",
             "--log-format", "json", *args],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           moto_session: MotoEndpoint) -> Iterator[Served]:
    require_root()
    moto_session.reset()
    work = tmp_path_factory.mktemp("bad-input")
    started: list[subprocess.Popen[bytes]] = []
    with EfsProxy(moto_session.url, seed=3) as proxy:
        try:
            setup = make_file_system(moto_session.url)
            (work / "efs" / setup.file_system_id).mkdir(parents=True)
            point = efs_client(MotoEndpoint(proxy.url)).create_access_point(
                FileSystemId=setup.file_system_id, ClientToken="bad-input-real",
                PosixUser={"Uid": 1000, "Gid": 1000},
                RootDirectory={"Path": "/real", "CreationInfo": {
                    "OwnerUid": 1000, "OwnerGid": 1000, "Permissions": "755"}})
            env = proxy.environment()
            started.append(_popen("controller", work, env, []))
            started.append(_popen("node", work, env, [
                "--node-id", "bad-input-node", "--availability-zone", "us-east-1a",
                "--mount-backend", "local", "--local-root", str(work / "efs"),
                "--vol-metrics-opt-in", "--remove-not-ready-taint=false"]))
            result = Served(work, proxy, setup.file_system_id, point["AccessPointId"],
                            work / "kubelet" / "staged-real", *started)
            for kind, process in zip(("controller", "node"), started, strict=True):
                _run_async(lambda kind=kind, process=process: _wait_ready(
                    result.socket(kind), process, work / kind / f"{kind}.log"))

            async def stage_real() -> None:
                channel = Channel(path=result.socket("node"))
                try:
                    await csi.NodeStub(channel).node_stage_volume(csi.NodeStageVolumeRequest(
                        volume_id=f"{result.file_system_id}::{result.access_point_id}",
                        staging_target_path=str(result.staged),
                        volume_capability=capability()))
                finally:
                    channel.close()

            _run_async(stage_real)
            yield result
            for kind, process in zip(("controller", "node"), started, strict=True):
                assert process.poll() is None, f"{kind} died during the module"
        finally:
            for process in started:
                _stop(process)
            unmount_everything_under(work)


@dataclass
class Stubs:
    controller: csi.ControllerStub
    node: csi.NodeStub
    controller_identity: csi.IdentityStub
    node_identity: csi.IdentityStub
    channels: tuple[Channel, Channel]


@pytest_asyncio.fixture
async def stubs(served: Served) -> AsyncIterator[Stubs]:
    controller, node = Channel(path=served.socket("controller")), Channel(
        path=served.socket("node"))
    try:
        yield Stubs(csi.ControllerStub(controller), csi.NodeStub(node),
                    csi.IdentityStub(controller), csi.IdentityStub(node), (controller, node))
    finally:
        controller.close()
        node.close()


# the oracle --------------------------------------------------------------------------------

_HANDLE = re.compile(r"(?:efs:)?fs-[0-9a-f]{8,40}(?::([^:]*)(?::([^:]*))?)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
KNOWN_CONTEXT_KEYS = {"encryptintransit", "mounttargetip", "mounttargetipmap", "crossaccount",
                      "storage.kubernetes.io/csiprovisioneridentity", "capacitybytes"}
VALID_MODES = {mode.value for mode in Mode if mode.value != 0}


def bad_volume_id(value: str) -> bool:
    match = _HANDLE.fullmatch(value)
    if match is None:
        return True
    path, access_point = match.group(1), match.group(2)
    if access_point and not re.fullmatch(r"fsap-[0-9a-f]{8,40}", access_point):
        return True
    return bool(path) and (not path.startswith("/") or ".." in path.split("/")
                           or _CONTROL.search(path) is not None)


def bad_path(value: str) -> bool:
    """Relative, NUL, a '..' component, or over Linux's PATH_MAX/NAME_MAX."""
    components = value.split("/")
    return (not value.startswith("/") or "\x00" in value or ".." in components
            or len(value.encode()) > 4095 or any(len(c.encode()) > 255 for c in components))


def bad_flag(flag: str) -> bool:
    """A flag may hold several comma-separated options; each must be non-empty."""
    return (not flag or "" in flag.split(",")
            or any(ch.isspace() or _CONTROL.match(ch) for ch in flag))


def bad_capability(cap: csi.VolumeCapability | None) -> bool:
    if cap is None or cap.mount is None or cap.block is not None:
        return True
    mode = cap.access_mode.mode if cap.access_mode is not None else 0
    return int(mode) not in VALID_MODES or any(bad_flag(f) for f in cap.mount.mount_flags)


def bad_context(context: dict[str, str]) -> bool:
    return any(key.lower() not in KNOWN_CONTEXT_KEYS for key in context)


# strategies --------------------------------------------------------------------------------

nasty_chars = st.sampled_from([",", "\n", "\t", " ", "\x00", "\x01", "\x7f", "..", "/", ":",
                               "=", "efs:", "fs-", "fsap-", "\u202e", "\u00e9", "\\", "%s"])
nasty = st.one_of(
    st.text(max_size=40),
    st.lists(nasty_chars, max_size=8).map("".join),
    st.builds(lambda text, times: text * times, st.sampled_from(["a", "/a", ":", ",", "é"]),
              st.integers(5_000, 20_000)),  # larger: see the xfail below
)
hex_id = st.text(alphabet="0123456789abcdef", min_size=8, max_size=17)


def volume_ids(served: Served, *, real: bool = True) -> st.SearchStrategy[str]:
    file_systems = st.one_of(st.just(served.file_system_id), hex_id.map("fs-{}".format))
    access_points = st.one_of(hex_id.map("fsap-{}".format), nasty)
    if real:
        access_points = st.one_of(st.just(served.access_point_id), access_points)
    paths = st.one_of(st.just(""), st.sampled_from(["/", "/a", "/a/../..", "/..", "a/b",
                                                     "/x\ny", "//", "/a/./b"]), nasty)
    structured = st.builds(
        lambda prefix, fs, path, ap, form: prefix + (fs, f"{fs}:{path}", f"{fs}:{path}:{ap}",
                                                     f"{fs}:{path}:{ap}:{path}")[form],
        st.sampled_from(["", "efs:", "EFS:"]), file_systems, paths, access_points,
        st.integers(0, 3))
    return st.one_of(structured, nasty)


def paths(served: Served) -> st.SearchStrategy[str]:
    """Mostly fresh directories below the module's kubelet dir, in good and bad spellings."""
    return st.one_of(
        st.builds(lambda: str(served.fresh_dir() / "mount")),
        st.builds(lambda suffix: str(served.fresh_dir()) + suffix,
                  st.sampled_from(["/a/../b", "/./m", "//m", "/m/", "/m\nn", "/m n", "/m\x01",
                                   "/\u00e9", "/" + "a" * 300, "/" + "a/" * 2100])),
        st.sampled_from(["", "relative/path", "./x", "../x", "/nul\x00byte"]),
        nasty,
    )


def capabilities() -> st.SearchStrategy[csi.VolumeCapability | None]:
    flags = st.lists(st.one_of(st.sampled_from(["ro", "noatime", "tls", "iam", "crossaccount",
                                                "accesspoint=fsap-0123456789", "rw,exec",
                                                "a b", "x\n", ""]), nasty), max_size=3)
    modes = st.one_of(st.sampled_from(sorted(VALID_MODES)), st.sampled_from([0, 99, -1, 1 << 20]))
    mount = st.builds(lambda fs_type, flags: csi.VolumeCapabilityMountVolume(
        fs_type=fs_type, mount_flags=flags), st.sampled_from(["", "nfs", "efs", "ext4"]), flags)
    access = st.one_of(st.none(), st.builds(lambda mode: csi.VolumeCapabilityAccessMode(
        mode=mode), modes))
    return st.one_of(
        st.none(),
        st.builds(lambda m, a: csi.VolumeCapability(mount=m, access_mode=a), mount, access),
        st.builds(lambda a: csi.VolumeCapability(block=csi.VolumeCapabilityBlockVolume(),
                                                 access_mode=a), access),
        st.builds(lambda a: csi.VolumeCapability(access_mode=a), access),
    )


contexts = st.one_of(
    st.just({}),
    st.dictionaries(st.sampled_from(["encryptInTransit", "mounttargetip", "mountTargetIpMap",
                                     "crossaccount", "capacityBytes"]),
                    st.one_of(st.sampled_from(["true", "false", "10.0.0.1", "{}", "1", "-1"]),
                              nasty), max_size=3),
    st.dictionaries(nasty, nasty, max_size=2),
)
capacity_ranges = st.one_of(st.none(), st.builds(
    lambda required, limit: csi.CapacityRange(required_bytes=required, limit_bytes=limit),
    st.integers(-(1 << 62), 1 << 62), st.integers(-(1 << 62), 1 << 62)))


def bad_capacity(capacity: csi.CapacityRange | None) -> bool:
    return capacity is not None and (
        capacity.required_bytes < 0 or capacity.limit_bytes < 0
        or 0 < capacity.limit_bytes < capacity.required_bytes)


# the check every example goes through ------------------------------------------------------


async def check(served: Served, identity: csi.IdentityStub, call: Callable[[], Awaitable[Any]],
                *, invalid: bool, given: tuple[str, ...] = (), ok_when_invalid: bool = False,
                ) -> Status:
    calls_before = served.proxy.efs_calls()
    mounts_before = {entry.mount_id for entry in read_mount_table().entries}
    try:
        await call()
        status = Status.OK
    except GRPCError as error:  # anything else (a dropped stream, a reset) fails the test
        status = error.status
    # Only mounts of this module's file system count (and are undone): others on this
    # machine (another test's kubelet, say) are neither this node's doing nor ours to touch.
    ours = str(served.work)
    new = [entry for entry in read_mount_table().entries
           if entry.mount_id not in mounts_before
           and (entry.root.startswith(ours) or entry.mount_point.startswith(ours))]
    for entry in sorted(new, key=lambda entry: -len(entry.mount_point)):
        subprocess.run(["umount", "-l", entry.mount_point], capture_output=True, check=False)
    allowed = {os.path.normpath(path) for path in given if path.startswith("/")}
    assert all(entry.mount_point in allowed for entry in new), \
        f"mounted outside the given paths {given!r}: {[e.mount_point for e in new]}"
    assert status not in NEVER, "UNKNOWN: the driver did not map an error"
    if invalid:
        assert status not in NOT_FOR_INVALID, f"clearly invalid input answered {status.name}"
        assert ok_when_invalid or status is not Status.OK, "clearly invalid input accepted"
        assert served.proxy.efs_calls() == calls_before, "EFS was called for rejected input"
    assert (await identity.probe(csi.ProbeRequest(), timeout=10)).ready
    return status


# controller --------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.timeout(180)
@EXAMPLES
@given(data=st.data())
async def test_create_volume(served: Served, stubs: Stubs, data: st.DataObject) -> None:
    name = data.draw(st.one_of(st.builds(lambda: f"pvc-fuzz-{next(_unique)}"), nasty))
    parameters = {"provisioningMode": "efs-ap", "fileSystemId": served.file_system_id,
                  "directoryPerms": "700", "gidRangeStart": "60000", "gidRangeEnd": "60999"}
    invalid = False
    for key in data.draw(st.lists(st.sampled_from([*parameters, "basePath", "subPathPattern",
                                                   "uid", "gid", "az", "new"]), max_size=2)):
        value = data.draw(nasty)
        parameters[key if key != "new" else data.draw(nasty)] = value
        invalid |= (key == "fileSystemId" and not re.fullmatch(r"fs-[0-9a-f]{8,40}", value)) or (
            key == "provisioningMode" and value != "efs-ap")
    caps = [c for c in data.draw(st.lists(capabilities(), max_size=2)) if c is not None]
    capacity = data.draw(capacity_ranges)
    invalid |= (not name or not caps or any(bad_capability(c) for c in caps)
                or bad_capacity(capacity))
    request = csi.CreateVolumeRequest(name=name, capacity_range=capacity, parameters=parameters,
                                      volume_capabilities=caps)
    replies: list[csi.CreateVolumeResponse] = []

    async def call() -> None:
        replies.append(await stubs.controller.create_volume(request, timeout=30))

    await check(served, stubs.controller_identity, call, invalid=invalid)
    for reply in replies:  # a valid create made an access point: give it back
        assert reply.volume is not None
        await stubs.controller.delete_volume(
            csi.DeleteVolumeRequest(volume_id=reply.volume.volume_id), timeout=30)


@pytest.mark.asyncio
@pytest.mark.timeout(180)
@EXAMPLES
@given(data=st.data())
async def test_delete_volume(served: Served, stubs: Stubs, data: st.DataObject) -> None:
    volume_id = data.draw(volume_ids(served, real=False))  # never delete the module's volume
    secrets = data.draw(st.dictionaries(nasty, nasty, max_size=2))
    await check(served, stubs.controller_identity,
                lambda: stubs.controller.delete_volume(
                    csi.DeleteVolumeRequest(volume_id=volume_id, secrets=secrets), timeout=30),
                invalid=bad_volume_id(volume_id), ok_when_invalid=True)


@pytest.mark.asyncio
@pytest.mark.timeout(180)
@EXAMPLES
@given(data=st.data())
async def test_validate_volume_capabilities(served: Served, stubs: Stubs,
                                            data: st.DataObject) -> None:
    volume_id = data.draw(volume_ids(served))
    caps = [c for c in data.draw(st.lists(capabilities(), max_size=2)) if c is not None]
    request = csi.ValidateVolumeCapabilitiesRequest(
        volume_id=volume_id, volume_capabilities=caps, volume_context=data.draw(contexts),
        parameters=data.draw(st.dictionaries(nasty, nasty, max_size=2)))
    await check(served, stubs.controller_identity,
                lambda: stubs.controller.validate_volume_capabilities(request, timeout=30),
                invalid=bad_volume_id(volume_id) or not caps)


@pytest.mark.asyncio
@pytest.mark.timeout(180)
@EXAMPLES
@given(data=st.data())
async def test_controller_expand_volume(served: Served, stubs: Stubs,
                                        data: st.DataObject) -> None:
    volume_id = data.draw(volume_ids(served))
    capacity = data.draw(capacity_ranges)
    cap = data.draw(capabilities())
    request = csi.ControllerExpandVolumeRequest(volume_id=volume_id, capacity_range=capacity,
                                                volume_capability=cap)
    invalid = (bad_volume_id(volume_id) or capacity is None or bad_capacity(capacity)
               or (cap is not None and bad_capability(cap)))
    await check(served, stubs.controller_identity,
                lambda: stubs.controller.controller_expand_volume(request, timeout=30),
                invalid=invalid)


UNIMPLEMENTED_CONTROLLER = [
    ("controller_publish_volume", lambda v: csi.ControllerPublishVolumeRequest(
        volume_id=v, node_id=v)),
    ("controller_unpublish_volume", lambda v: csi.ControllerUnpublishVolumeRequest(
        volume_id=v, node_id=v)),
    ("list_volumes", lambda v: csi.ListVolumesRequest(starting_token=v)),
    ("get_capacity", lambda v: csi.GetCapacityRequest(parameters={v: v})),
    ("create_snapshot", lambda v: csi.CreateSnapshotRequest(source_volume_id=v, name=v)),
    ("delete_snapshot", lambda v: csi.DeleteSnapshotRequest(snapshot_id=v)),
    ("list_snapshots", lambda v: csi.ListSnapshotsRequest(source_volume_id=v)),
    ("controller_get_volume", lambda v: csi.ControllerGetVolumeRequest(volume_id=v)),
    ("controller_modify_volume", lambda v: csi.ControllerModifyVolumeRequest(volume_id=v)),
]


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_unimplemented_and_informational_controller_rpcs(
        served: Served, stubs: Stubs, data: st.DataObject) -> None:
    value = data.draw(volume_ids(served))
    for method, build in UNIMPLEMENTED_CONTROLLER:
        status = await check(served, stubs.controller_identity,
                             lambda method=method, build=build: getattr(
                                 stubs.controller, method)(build(value), timeout=30),
                             invalid=True)
        assert status is Status.UNIMPLEMENTED, method
    await check(served, stubs.controller_identity, lambda: stubs.controller
                .controller_get_capabilities(csi.ControllerGetCapabilitiesRequest(), timeout=30),
                invalid=False)


# node --------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.timeout(180)
@EXAMPLES
@given(data=st.data())
async def test_node_stage_volume(served: Served, stubs: Stubs, data: st.DataObject) -> None:
    volume_id = data.draw(volume_ids(served))
    staging = data.draw(paths(served))
    cap = data.draw(capabilities())
    context = data.draw(contexts)
    request = csi.NodeStageVolumeRequest(volume_id=volume_id, staging_target_path=staging,
                                         volume_capability=cap, volume_context=context)
    await check(served, stubs.node_identity,
                lambda: stubs.node.node_stage_volume(request, timeout=30),
                invalid=(bad_volume_id(volume_id) or bad_path(staging) or bad_capability(cap)
                         or bad_context(context)), given=(staging,))


@pytest.mark.asyncio
@pytest.mark.timeout(180)
@EXAMPLES
@given(data=st.data())
async def test_node_unstage_volume(served: Served, stubs: Stubs, data: st.DataObject) -> None:
    volume_id = data.draw(st.one_of(volume_ids(served), nasty))
    staging = data.draw(paths(served))  # never the module's staged path
    await check(served, stubs.node_identity,
                lambda: stubs.node.node_unstage_volume(csi.NodeUnstageVolumeRequest(
                    volume_id=volume_id, staging_target_path=staging), timeout=30),
                invalid=not volume_id or bad_path(staging))


@pytest.mark.asyncio
@pytest.mark.timeout(180)
@EXAMPLES
@given(data=st.data())
async def test_node_publish_volume(served: Served, stubs: Stubs, data: st.DataObject) -> None:
    volume_id = data.draw(st.one_of(
        st.just(f"{served.file_system_id}::{served.access_point_id}"), volume_ids(served)))
    staging = data.draw(st.one_of(st.just(str(served.staged)), paths(served)))
    target = data.draw(paths(served))
    cap = data.draw(capabilities())
    context = data.draw(contexts)
    request = csi.NodePublishVolumeRequest(
        volume_id=volume_id, staging_target_path=staging, target_path=target,
        volume_capability=cap, readonly=data.draw(st.booleans()), volume_context=context)
    await check(served, stubs.node_identity,
                lambda: stubs.node.node_publish_volume(request, timeout=30),
                invalid=(bad_volume_id(volume_id) or bad_path(staging) or bad_path(target)
                         or bad_capability(cap) or bad_context(context)),
                given=(target,))


@pytest.mark.asyncio
@pytest.mark.timeout(180)
@EXAMPLES
@given(data=st.data())
async def test_node_unpublish_volume(served: Served, stubs: Stubs, data: st.DataObject) -> None:
    volume_id = data.draw(st.one_of(volume_ids(served), nasty))
    target = data.draw(paths(served))
    await check(served, stubs.node_identity,
                lambda: stubs.node.node_unpublish_volume(csi.NodeUnpublishVolumeRequest(
                    volume_id=volume_id, target_path=target), timeout=30),
                invalid=not volume_id or bad_path(target))


@pytest.mark.asyncio
@pytest.mark.timeout(180)
@EXAMPLES
@given(data=st.data())
async def test_node_get_volume_stats(served: Served, stubs: Stubs, data: st.DataObject) -> None:
    volume_id = data.draw(st.one_of(
        st.just(f"{served.file_system_id}::{served.access_point_id}"), volume_ids(served)))
    path = data.draw(st.one_of(st.just(str(served.staged)), paths(served)))
    await check(served, stubs.node_identity,
                lambda: stubs.node.node_get_volume_stats(csi.NodeGetVolumeStatsRequest(
                    volume_id=volume_id, volume_path=path), timeout=30),
                invalid=bad_volume_id(volume_id) or bad_path(path))


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_other_node_rpcs(served: Served, stubs: Stubs, data: st.DataObject) -> None:
    volume_id = data.draw(volume_ids(served))
    path = data.draw(paths(served))
    status = await check(served, stubs.node_identity, lambda: stubs.node.node_expand_volume(
        csi.NodeExpandVolumeRequest(volume_id=volume_id, volume_path=path,
                                    capacity_range=data.draw(capacity_ranges)), timeout=30),
        invalid=True)
    assert status is Status.UNIMPLEMENTED
    for call in (lambda: stubs.node.node_get_capabilities(csi.NodeGetCapabilitiesRequest()),
                 lambda: stubs.node.node_get_info(csi.NodeGetInfoRequest())):
        assert await check(served, stubs.node_identity, call, invalid=False) is Status.OK


# raw bytes: messages that are not valid protobuf at all -----------------------------------


class RawCodec(CodecBase):
    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        return bytes(message)

    def decode(self, data: bytes, message_type: Any) -> Any:
        return data


METHODS = {
    "controller": ["/csi.v1.Controller/CreateVolume", "/csi.v1.Controller/DeleteVolume",
                   "/csi.v1.Controller/ValidateVolumeCapabilities",
                   "/csi.v1.Controller/ControllerExpandVolume",
                   "/csi.v1.Controller/ControllerGetCapabilities",
                   "/csi.v1.Identity/GetPluginInfo", "/csi.v1.Identity/Probe",
                   "/csi.v1.Identity/GetPluginCapabilities", "/csi.v1.Controller/NoSuchMethod"],
    "node": ["/csi.v1.Node/NodeStageVolume", "/csi.v1.Node/NodeUnstageVolume",
             "/csi.v1.Node/NodePublishVolume", "/csi.v1.Node/NodeUnpublishVolume",
             "/csi.v1.Node/NodeGetVolumeStats", "/csi.v1.Node/NodeGetInfo",
             "/csi.v1.Node/NodeGetCapabilities", "/csi.v1.Identity/Probe",
             "/nope.Service/Method"],
}
# Hand-built protobuf: a VolumeCapability whose access mode is an enum value no CSI version
# defines (field 2 mount {}, field 3 access_mode {mode: 0x7fffffff}), and a wire type that
# does not exist (7).
UNKNOWN_ENUM_CAPABILITY = b"\x12\x00\x1a\x05\x08\xff\xff\xff\xff\x07"
raw_messages = st.one_of(
    st.binary(max_size=512),
    st.just(b"\x0a" + b"\xff" * 10),  # a length prefix that never ends
    st.just(b"\x0f\x00"),  # wire type 7
    st.builds(lambda volume: b"\x0a" + bytes([len(volume)]) + volume + b"\x22"
              + bytes([len(UNKNOWN_ENUM_CAPABILITY)]) + UNKNOWN_ENUM_CAPABILITY,
              st.sampled_from([b"fs-0123456789", b"fs-01234567::fsap-0123456789"])),
)


@pytest.mark.asyncio
@pytest.mark.timeout(180)
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["controller", "node"]), data=st.data())
async def test_raw_bytes_never_drop_the_connection(served: Served, stubs: Stubs, kind: str,
                                                   data: st.DataObject) -> None:
    method = data.draw(st.sampled_from(METHODS[kind]))
    payload = data.draw(raw_messages)
    channel = Channel(path=served.socket(kind), codec=RawCodec())
    identity = stubs.controller_identity if kind == "controller" else stubs.node_identity

    async def call() -> None:
        async with channel.request(method, Cardinality.UNARY_UNARY, bytes, bytes,
                                   timeout=30) as stream:
            await stream.send_message(payload, end=True)
            await stream.recv_message()

    try:
        await check(served, identity, call, invalid=False,
                    given=(str(served.base),))
    finally:
        channel.close()

