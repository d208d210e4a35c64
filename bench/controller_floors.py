"""The floors under the controller's CPU per call, its start-up and its RSS with 10,000 access
points: what grpclib and aiobotocore cost by themselves, each in a process of its own, and
together without the driver, measured as ``bench/controller_provisioning.py`` measures the
controller (its CPU time from ``/proc/<pid>/stat``, 200 calls at once).

    python bench/controller_floors.py [--repeats 5] [--quick]

Rows (median of ``--repeats``, runs alternating between rows):

- ``grpclib, bare``: a grpclib server over a unix socket whose CreateVolume and DeleteVolume
  answer at once (betterproto2's messages, nothing else): the server side of a CSI call. The
  creates are the requests the controller's benchmark sends (the parameters csi-provisioner
  passes), the answers of the controller's shape.
- ``grpclib + the driver's hook``: the same behind ``efs_csi.rpc.hook.instrument`` (context
  variables, in-flight count, the error mapping and the per-call log line, JSON to a file).
- ``aiobotocore, plain``: an EFS client as the controller configures it
  (``efs_csi.adapters.aws.client_config``) sending 200 CreateAccessPoint calls at once, then
  the 200 DeleteAccessPoint calls, to moto (a process of its own) behind the EFS proxy (in
  this process); neither is counted; CPU per create and per delete.
- ``aiobotocore, tuned``: the same client with ``efs_csi.adapters.aws.tuning``.
- ``grpclib + tuned aiobotocore, one process``: the bare grpclib server whose CreateVolume
  makes that tuned client's CreateAccessPoint (the ``aiobotocore`` rows' arguments) and whose
  DeleteVolume makes its DeleteAccessPoint before answering: the controller's shape (one event
  loop serving both sides) with none of the driver in it. Before its CPU is measured, its RSS
  growth over a burst of 100 creates, as the scale part measures the controller's.
- ``the driver's own logic, EFS in memory``: the controller's service as the binary builds it
  (``build_controller``) over the in-memory EFS API of the tests (``FakeCloud``: no
  aiobotocore, no gRPC, no hook), called directly: the parameters, the plan, tokens, tags,
  the shared-root check, the GID reservation and its settling; the in-memory EFS's own work
  (making the access points it answers, as the AWS adapter makes them from a reply) counted
  with it.

A create or a delete in the controller is one CSI call and one EFS call: the sum of a grpclib
row and an aiobotocore row is the floor under its CPU per create or per delete, measured
apart; the one-process row is the same two libraries sharing one event loop, as they do in
the controller.

And the floor under the controller's start-up rows (``bench/startup.py``): ``libraries
alone`` (``bench/_libraries_alone.py``), the controller's libraries without the driver, run
as the image runs the controller (its image-like venv, ``-OO``, the chart's environment):
exec until one EFS call is answered, and the idle RSS after it.

And the floor under the scale part's RSS (``bench/controller_provisioning.py --parts scale``:
a burst of 100 creates on a file system of 9,900 access points, at most 5 MiB over idle): the
burst's growth in the one-process row (the libraries serving 100 creates at once), and a
minimal inventory of 10,000 access points alone (``minimal_inventory``: their id, client token
and root strings and GIDs in three dicts, nothing else), and the floor itself: the one-process
row's burst with that inventory built after its idle RSS is read (the creates pick their GIDs
from the inventory, so it is alive while they are in flight).

Saved in ``bench/results/controller_floors.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _image_venv import image_venvs  # noqa: E402
from controller_provisioning import (  # noqa: E402
    SCALE_BURST,
    SCALE_EXISTING,
    cpu_seconds,
    load_average,
    request,
)
from grpclib.client import Channel  # noqa: E402

from efs_csi import csi  # noqa: E402
from testbed.chart import container_env  # noqa: E402
from testbed.efs_proxy import EfsProxy, make_file_system  # noqa: E402
from testbed.moto_server import CREDENTIALS, REGION, MotoEndpoint, running_moto  # noqa: E402
from testbed.processes import rss_mib  # noqa: E402

RESULTS = REPO / "bench" / "results"
CALLS = 200
GRPC_ROUNDS = 5  # rounds of CALLS creates, then deletes, per run: the clock ticks are 10 ms
ROWS = ("grpclib, bare", "grpclib + the driver's hook", "aiobotocore, plain",
        "aiobotocore, tuned", "grpclib + tuned aiobotocore, one process",
        "the driver's own logic, EFS in memory")
LIBRARIES_ROW = "libraries alone (image-like venv, -OO, chart env)"
INVENTORY_ROW = "a minimal inventory of 10,000 access points, alone"
COMBINED_ROW = "the one-process burst of 100 with a minimal inventory alive"
LIBRARIES_ALONE = REPO / "bench" / "_libraries_alone.py"


def create_arguments(token: str, gid: int, file_system_id: str) -> dict[str, Any]:
    """One CreateAccessPoint's arguments, the same in every row that calls EFS."""
    return {"ClientToken": token, "FileSystemId": file_system_id,
            "PosixUser": {"Uid": gid, "Gid": gid},
            "RootDirectory": {"Path": f"/floor/{token}", "CreationInfo": {
                "OwnerUid": gid, "OwnerGid": gid, "Permissions": "700"}},
            "Tags": [{"Key": "efs.csi.aws.com/cluster", "Value": "true"}]}


@asynccontextmanager
async def efs_client(endpoint: str, tuned: bool) -> AsyncIterator[Any]:
    """An EFS client as the controller configures it, tuned or not, warmed by one call."""
    from aiobotocore.session import AioSession

    from efs_csi.adapters.aws.client import client_config
    from efs_csi.adapters.aws.tuning import tune_client, tune_session

    session = AioSession()
    if tuned:
        tune_session(session)
    config = client_config(REGION, max_pool_connections=64)
    async with session.create_client("efs", config=config, endpoint_url=endpoint) as client:
        if tuned:
            tune_client(client)
        await client.describe_file_systems()  # warm up
        yield client


class _Controller(csi.ControllerBase):
    """Answers at once; or, given an EFS client, after one EFS call per CSI call."""

    def __init__(self, efs: Any = None) -> None:
        self._efs = efs
        self._gids = itertools.count(50000)

    async def create_volume(self, message: csi.CreateVolumeRequest) -> csi.CreateVolumeResponse:
        """The answer's shape is the controller's (an id, the capacity, no context)."""
        capacity = message.capacity_range.required_bytes if message.capacity_range else 0
        file_system_id = message.parameters["fileSystemId"]
        access_point = "fsap-0123456789abcdef0"
        if self._efs is not None:
            reply = await self._efs.create_access_point(
                **create_arguments(message.name, next(self._gids), file_system_id))
            access_point = reply["AccessPointId"]
        return csi.CreateVolumeResponse(volume=csi.Volume(
            volume_id=f"{file_system_id}::{access_point}", capacity_bytes=capacity))

    async def delete_volume(self, message: csi.DeleteVolumeRequest) -> csi.DeleteVolumeResponse:
        if self._efs is not None:
            await self._efs.delete_access_point(AccessPointId=message.volume_id.split("::")[1])
        return csi.DeleteVolumeResponse()


async def serve_grpc(socket_path: str, hooked: bool, log_path: str,
                     endpoint: str | None) -> None:
    """The grpclib child: serve until stdin closes; with an EFS endpoint, call it. Each line
    on stdin has it build a minimal inventory (answered by a line: ``built``)."""
    from grpclib.server import Server

    async with AsyncExitStack() as stack:
        efs = await stack.enter_async_context(efs_client(endpoint, True)) if endpoint else None
        service: Any = _Controller(efs)
        if hooked:
            from efs_csi.logging import configure_logging
            from efs_csi.rpc.hook import CallsInFlight, instrument

            configure_logging("json", "info", stream=open(log_path, "a"))  # noqa: SIM115, ASYNC230
            service = instrument(service, CallsInFlight())
        server = Server([service])
        await server.start(path=socket_path)
        print("ready", flush=True)
        kept = []
        while await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline):
            kept.append(minimal_inventory())  # asked for by a line: alive until the end
            print("built", flush=True)
        server.close()
        await server.wait_closed()


async def aws_calls(endpoint: str, file_system_id: str, tuned: bool) -> dict[str, float]:
    """The aiobotocore child: 200 creates at once, then their deletes; own CPU per call."""
    async with efs_client(endpoint, tuned) as client:

        async def create(index: int) -> str:
            reply = await client.create_access_point(
                **create_arguments(f"floor-{os.getpid()}-{index}", 50000 + index,
                                   file_system_id))
            return str(reply["AccessPointId"])

        before = own_cpu()
        ids = await asyncio.gather(*(create(index) for index in range(CALLS)))
        created = own_cpu()
        await asyncio.gather(*(client.delete_access_point(AccessPointId=access_point)
                               for access_point in ids))
        deleted = own_cpu()
    return {"create_cpu_ms": (created - before) * 1000 / CALLS,
            "delete_cpu_ms": (deleted - created) * 1000 / CALLS}


async def driver_logic() -> dict[str, float]:
    """The logic child: GRPC_ROUNDS rounds of CALLS creates at once, then their deletes,
    straight into the controller's service over the in-memory EFS; own CPU per call."""
    from efs_csi_controller.app import build_controller
    from testbed.fake_cloud import FakeCloud

    file_system_id = "fs-12345678"
    service = build_controller(FakeCloud(file_system_id, page_size=1000),
                               access_point_limit=10_000, extra_tags={}).service
    warm = await service.create_volume(request("pvc-floor-warm", file_system_id))
    await service.delete_volume(delete_of(warm))
    spent = {"create_cpu_ms": 0.0, "delete_cpu_ms": 0.0}
    for round_ in range(GRPC_ROUNDS):
        creates = [request(f"pvc-floor-{round_}-{index}", file_system_id)
                   for index in range(CALLS)]
        before = own_cpu()
        answers = await asyncio.gather(*(service.create_volume(create) for create in creates))
        created = own_cpu()
        await asyncio.gather(*(service.delete_volume(delete_of(answer)) for answer in answers))
        spent["create_cpu_ms"] += created - before
        spent["delete_cpu_ms"] += own_cpu() - created
    return {key: seconds * 1000 / (CALLS * GRPC_ROUNDS) for key, seconds in spent.items()}


def delete_of(answer: csi.CreateVolumeResponse) -> csi.DeleteVolumeRequest:
    """The DeleteVolume of the volume a CreateVolume answered."""
    if answer.volume is None:
        raise RuntimeError("a CreateVolume answered no volume")
    return csi.DeleteVolumeRequest(volume_id=answer.volume.volume_id)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def minimal_inventory() -> tuple[dict[str, int], dict[str, str], dict[str, str]]:
    """What an inventory that answers by id, client token and root (the driver's GID picks,
    its retried creates and its shared-root check, without a listing per create) holds at
    least, for the scale part's file system: each access point's id, token and root strings,
    as moto names them and the benchmark makes them (``fsap-`` and 8 hex digits,
    ``existing-<n>``, ``/existing/<n>``), and its GID, in three dicts (by id to the GID, by
    token and by root to the id), nothing else."""
    by_id: dict[str, int] = {}
    by_token: dict[str, str] = {}
    by_root: dict[str, str] = {}
    for index in range(SCALE_EXISTING + SCALE_BURST):
        access_point = f"fsap-{index:08x}"
        by_id[access_point] = int(f"{50000 + 2 * index}")  # an int object of its own, as parsed
        by_token[f"existing-{index}"] = access_point
        by_root[f"/existing/{index}"] = access_point
    return by_id, by_token, by_root


def inventory_alone() -> dict[str, float]:
    """The inventory child: a minimal inventory's RSS growth, alone in a process."""
    idle = rss_mib(os.getpid())
    inventory = minimal_inventory()
    return {"rss_growth_mib": rss_mib(os.getpid()) - idle, "access_points": len(inventory[0])}


def child(args: argparse.Namespace) -> int:
    if args.child == "grpc":
        asyncio.run(serve_grpc(args.socket, args.hooked, args.log, args.endpoint))
    elif args.child == "logic":
        print(json.dumps(asyncio.run(driver_logic())))
    elif args.child == "inventory":
        print(json.dumps(inventory_alone()))
    else:
        print(json.dumps(asyncio.run(aws_calls(args.endpoint, args.file_system, args.tuned))))
    return 0


@asynccontextmanager
async def grpc_child(work: Path, hooked: bool, endpoint: str | None, file_system_id: str
                     ) -> AsyncIterator[tuple[asyncio.subprocess.Process, csi.ControllerStub]]:
    """A grpclib child (calling EFS at ``endpoint`` if given), warmed by one create and its
    delete, and a stub for it; stopped on leaving."""
    socket_path = work / f"floor-{time.monotonic_ns()}.sock"
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", "grpc", "--socket", str(socket_path),
        "--log", str(work / "hook.log"), *(["--hooked"] if hooked else []),
        *(["--endpoint", endpoint] if endpoint else []),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None and process.stdin is not None
    try:
        await process.stdout.readline()
        channel = Channel(path=str(socket_path))
        try:
            stub = csi.ControllerStub(channel)
            warm = await stub.create_volume(request("pvc-floor-warm", file_system_id))
            await stub.delete_volume(delete_of(warm))
            yield process, stub
        finally:
            channel.close()
    finally:
        process.stdin.close()
        await process.wait()


async def burst_growth(process: asyncio.subprocess.Process, stub: csi.ControllerStub,
                       file_system_id: str, with_inventory: bool) -> float:
    """The child's RSS growth over a burst of SCALE_BURST creates, read as the scale part
    reads the controller's; ``with_inventory``: a minimal inventory built in the child after
    its idle RSS is read."""
    assert process.stdout is not None and process.stdin is not None
    idle = rss_mib(process.pid)
    if with_inventory:
        process.stdin.write(b"inventory\n")
        if await process.stdout.readline() != b"built\n":
            raise RuntimeError("the grpclib child built no inventory")
    answers = await asyncio.gather(*(
        stub.create_volume(request(f"pvc-floor-burst-{index}", file_system_id))
        for index in range(SCALE_BURST)))
    growth = rss_mib(process.pid) - idle
    await asyncio.gather(*(stub.delete_volume(delete_of(answer)) for answer in answers))
    return growth


async def grpc_row(hooked: bool, work: Path,
                   efs: tuple[str, str] | None = None) -> dict[str, float]:
    """GRPC_ROUNDS rounds of CALLS CreateVolume calls at once, then their DeleteVolume calls,
    to a grpclib child: its CPU per call. With ``efs`` (an endpoint, a file system) the child
    calls EFS, and its RSS growth over a burst comes first."""
    endpoint, file_system_id = efs or (None, "fs-12345678")
    async with grpc_child(work, hooked, endpoint, file_system_id) as (process, stub):
        figures = ({"burst_rss_growth_mib": await burst_growth(process, stub, file_system_id,
                                                               with_inventory=False)}
                   if efs else {})
        spent = {"create_cpu_ms": 0.0, "delete_cpu_ms": 0.0}
        for round_ in range(GRPC_ROUNDS):
            creates = [request(f"pvc-floor-{round_}-{index}", file_system_id)
                       for index in range(CALLS)]
            before = cpu_seconds(process.pid)
            answers = await asyncio.gather(*(stub.create_volume(create) for create in creates))
            created = cpu_seconds(process.pid)
            await asyncio.gather(*(stub.delete_volume(delete_of(answer)) for answer in answers))
            spent["create_cpu_ms"] += created - before
            spent["delete_cpu_ms"] += cpu_seconds(process.pid) - created
    return {**{key: seconds * 1000 / (CALLS * GRPC_ROUNDS) for key, seconds in spent.items()},
            **figures}


async def floor_with_inventory(work: Path, efs: tuple[str, str]) -> dict[str, float]:
    """The floor under the scale part's RSS: the one-process child's burst with a minimal
    inventory alive."""
    endpoint, file_system_id = efs
    async with grpc_child(work, False, endpoint, file_system_id) as (process, stub):
        return {"burst_rss_growth_mib": await burst_growth(process, stub, file_system_id,
                                                           with_inventory=True)}


async def aws_row(tuned: bool, endpoint: str, moto_url: str) -> dict[str, float]:
    file_system_id = make_file_system(moto_url).file_system_id
    return await child_figures("aws", "--endpoint", endpoint, "--file-system", file_system_id,
                               *(["--tuned"] if tuned else []))


async def child_figures(*arguments: str) -> dict[str, float]:
    """Run this script as ``--child``; its figures, printed as JSON."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", *arguments, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    figures: dict[str, float] = json.loads(out)
    return figures


async def libraries_row(python: Path, env: dict[str, str], endpoint: str,
                        work: Path) -> dict[str, float]:
    """One start of the libraries alone: exec until its EFS call is answered, its idle RSS."""
    started = time.perf_counter()
    # -P and a working directory outside the repository: nothing of it on sys.path.
    process = await asyncio.create_subprocess_exec(
        str(python), "-OO", "-P", str(LIBRARIES_ALONE), endpoint, env=env, cwd=work,
        stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    try:
        if await process.stdout.readline() != b"answered\n":
            raise RuntimeError("the libraries-alone child made no EFS call")
        answered = time.perf_counter() - started
        figures = json.loads(await process.stdout.readline())
    finally:
        await process.wait()
    if figures["optimize"] != 2:
        raise RuntimeError(f"the libraries-alone child ran at level {figures['optimize']}")
    return {"exec_to_first_call_s": answered, "idle_rss_mib": figures["rss_mib"]}


def libraries_env(chart_env: dict[str, str], moto: MotoEndpoint) -> dict[str, str]:
    """The chart's controller environment, and an AWS SDK pointed at moto."""
    env = {**os.environ, **chart_env, **moto.environment()}
    for variable in ("PYTHONPATH", "VIRTUAL_ENV", "AWS_ENDPOINT_URL"):
        env.pop(variable, None)
    return env


def medians(samples: dict[str, list[dict[str, float]]], label: str) -> list[dict[str, Any]]:
    rows = []
    for row, runs in samples.items():
        summary: dict[str, Any] = {label: row, "runs": len(runs)}
        for key in runs[0] if runs else ():
            summary[key] = round(statistics.median(run[key] for run in runs), 3)
        rows.append(summary)
    return rows


async def measure(repeats: int, alone_with: tuple[Path, dict[str, str]] | None
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The CPU rows; given the controller's image-like interpreter and the chart's
    environment, the libraries-alone row; the memory rows under the scale part, by name."""
    samples: dict[str, list[dict[str, float]]] = {row: [] for row in ROWS}
    alone: dict[str, list[dict[str, float]]] = {LIBRARIES_ROW: []}
    memory: dict[str, list[dict[str, float]]] = {INVENTORY_ROW: [], COMBINED_ROW: []}
    with (running_moto(own_process=True) as moto, EfsProxy(moto.url, seed=7) as proxy,
          tempfile.TemporaryDirectory(prefix="bench-floors-") as tmp):
        python = alone_with[0] if alone_with else None
        env = libraries_env(alone_with[1], moto) if alone_with else {}
        if python:  # warm-up, not counted: the first exec pays the page cache
            await libraries_row(python, env, moto.url, Path(tmp))
        for repeat in range(repeats):
            samples[ROWS[0]].append(await grpc_row(False, Path(tmp)))
            samples[ROWS[1]].append(await grpc_row(True, Path(tmp)))
            samples[ROWS[2]].append(await aws_row(False, proxy.url, moto.url))
            samples[ROWS[3]].append(await aws_row(True, proxy.url, moto.url))
            samples[ROWS[4]].append(await grpc_row(False, Path(tmp), (
                proxy.url, make_file_system(moto.url).file_system_id)))
            samples[ROWS[5]].append(await child_figures("logic"))
            memory[INVENTORY_ROW].append(await child_figures("inventory"))
            memory[COMBINED_ROW].append(await floor_with_inventory(Path(tmp), (
                proxy.url, make_file_system(moto.url).file_system_id)))
            if python:
                alone[LIBRARIES_ROW].append(await libraries_row(python, env, moto.url,
                                                                Path(tmp)))
            print(f"  run {repeat + 1}/{repeats}: "
                  + "; ".join(f"{row}: {runs[-1]}"
                              for row, runs in (*samples.items(), *alone.items(),
                                                *memory.items()) if runs),
                  flush=True)
    return (medians(samples, "floor"), medians(alone, "floor") if python else [],
            {row["floor"]: row for row in medians(memory, "floor")})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one run")
    parser.add_argument("--child", choices=("grpc", "aws", "logic", "inventory"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--socket", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    parser.add_argument("--hooked", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--file-system", help=argparse.SUPPRESS)
    parser.add_argument("--tuned", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update({**CREDENTIALS, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"})
    if args.child:
        return child(args)
    load_at_start = load_average()
    alone_with: tuple[Path, dict[str, str]] | None = None
    try:
        chart_env = container_env("Deployment", "efs-csi-controller")  # helm renders it
        alone_with = (image_venvs()["efs-csi-controller"] / "python", chart_env)
    except FileNotFoundError as exc:
        print(f"note: no \"{LIBRARIES_ROW}\" row: {exc}")
    rows, alone, memory = asyncio.run(measure(1 if args.quick else args.repeats, alone_with))
    print(f"\n{'floor':<42} {'CPU ms per create':>18} {'CPU ms per delete':>18}")
    for row in rows:
        print(f"{row['floor']:<42} {row.get('create_cpu_ms', '-')!s:>18} "
              f"{row.get('delete_cpu_ms', '-')!s:>18}")
    by = {row["floor"]: row for row in rows}

    def added(first: str, second: str) -> dict[str, float]:
        """Two rows' CPU per create and per delete, added."""
        return {call: round(by[first][f"{call}_cpu_ms"] + by[second][f"{call}_cpu_ms"], 3)
                for call in ("create", "delete")}

    floors = added(ROWS[0], ROWS[3])
    print(f"floor under a create / a delete (bare grpclib + tuned aiobotocore): "
          f"{floors['create']} / {floors['delete']} ms measured apart, "
          f"{by[ROWS[4]]['create_cpu_ms']} / {by[ROWS[4]]['delete_cpu_ms']} ms in one process")
    with_logic = added(ROWS[4], ROWS[5])
    print(f"the same in one process with the driver's own logic on it: "
          f"{with_logic['create']} / {with_logic['delete']} ms")
    burst = by[ROWS[4]]["burst_rss_growth_mib"]
    inventory = memory[INVENTORY_ROW]["rss_growth_mib"]
    rss_floor = memory[COMBINED_ROW]["burst_rss_growth_mib"]
    print(f"RSS growth under 10,000 access points and a burst of {SCALE_BURST} creates "
          f"(bench/controller_provisioning.py --parts scale): the burst in one process "
          f"+{burst} MiB, a minimal inventory alone +{inventory} MiB, the burst with that "
          f"inventory alive +{rss_floor} MiB")
    for row in alone:
        print(f"{row['floor']}: exec to one EFS call answered {row['exec_to_first_call_s']} s, "
              f"idle RSS {row['idle_rss_mib']} MiB (the controller: bench/startup.py)")
    print(f"load {load_at_start} at start, {load_average()} at end")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "controller_floors.json").write_text(json.dumps(
        {"benchmark": "controller_floors", "rows": rows, "create_floor_ms": floors["create"],
         "delete_floor_ms": floors["delete"],
         "one_process_floor_ms": {call: by[ROWS[4]][f"{call}_cpu_ms"]
                                  for call in ("create", "delete")},
         "one_process_floor_with_driver_logic_ms": with_logic, "libraries_alone": alone,
         "memory": list(memory.values()), "scale_rss_floor_mib": rss_floor,
         "load_average_at_start": load_at_start, "load_average_at_end": load_average()},
        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
