"""The floors under the controller's CPU per call: what grpclib and aiobotocore cost by
themselves, each in a process of its own, measured as ``bench/controller_provisioning.py``
measures the controller (its CPU time from ``/proc/<pid>/stat``, 200 calls at once).

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

A create or a delete in the controller is one CSI call and one EFS call: the sum of a grpclib
row and an aiobotocore row is the floor under its CPU per create or per delete.

And the floor under the controller's start-up rows (``bench/startup.py``): ``libraries
alone`` (``bench/_libraries_alone.py``), the controller's libraries without the driver, run
as the image runs the controller (its image-like venv, ``-OO``, the chart's environment):
exec until one EFS call is answered, and the idle RSS after it. Saved in
``bench/results/controller_floors.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _image_venv import image_venvs  # noqa: E402
from controller_provisioning import cpu_seconds, load_average, request  # noqa: E402
from grpclib.client import Channel  # noqa: E402

from efs_csi import csi  # noqa: E402
from testbed.chart import container_env  # noqa: E402
from testbed.efs_proxy import EfsProxy, make_file_system  # noqa: E402
from testbed.moto_server import CREDENTIALS, REGION, MotoEndpoint, running_moto  # noqa: E402

RESULTS = REPO / "bench" / "results"
CALLS = 200
GRPC_ROUNDS = 5  # rounds of CALLS creates, then deletes, per run: the clock ticks are 10 ms
ROWS = ("grpclib, bare", "grpclib + the driver's hook", "aiobotocore, plain",
        "aiobotocore, tuned")
LIBRARIES_ROW = "libraries alone (image-like venv, -OO, chart env)"
LIBRARIES_ALONE = REPO / "bench" / "_libraries_alone.py"


class _Controller(csi.ControllerBase):
    async def create_volume(self, message: csi.CreateVolumeRequest) -> csi.CreateVolumeResponse:
        """The answer's shape is the controller's (an id, the capacity, no context)."""
        capacity = message.capacity_range.required_bytes if message.capacity_range else 0
        return csi.CreateVolumeResponse(volume=csi.Volume(
            volume_id=f"{message.parameters['fileSystemId']}::fsap-0123456789abcdef0",
            capacity_bytes=capacity))

    async def delete_volume(self, message: csi.DeleteVolumeRequest) -> csi.DeleteVolumeResponse:
        return csi.DeleteVolumeResponse()


async def serve_grpc(socket_path: str, hooked: bool, log_path: str) -> None:
    """The grpclib child: serve until stdin closes."""
    from grpclib.server import Server

    service: Any = _Controller()
    if hooked:
        from efs_csi.logging import configure_logging
        from efs_csi.rpc.hook import CallsInFlight, instrument

        configure_logging("json", "info", stream=open(log_path, "a"))  # noqa: SIM115, ASYNC230
        service = instrument(service, CallsInFlight())
    server = Server([service])
    await server.start(path=socket_path)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.close()
    await server.wait_closed()


async def aws_calls(endpoint: str, file_system_id: str, tuned: bool) -> dict[str, float]:
    """The aiobotocore child: 200 creates at once, then their deletes; own CPU per call."""
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
        await client.describe_file_systems(FileSystemId=file_system_id)  # warm up

        async def create(index: int) -> str:
            reply = await client.create_access_point(
                ClientToken=f"floor-{os.getpid()}-{index}", FileSystemId=file_system_id,
                PosixUser={"Uid": 50000 + index, "Gid": 50000 + index},
                RootDirectory={"Path": f"/floor/{os.getpid()}/{index}", "CreationInfo": {
                    "OwnerUid": 50000 + index, "OwnerGid": 50000 + index,
                    "Permissions": "700"}},
                Tags=[{"Key": "efs.csi.aws.com/cluster", "Value": "true"}])
            return str(reply["AccessPointId"])

        def own_cpu() -> float:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return usage.ru_utime + usage.ru_stime

        before = own_cpu()
        ids = await asyncio.gather(*(create(index) for index in range(CALLS)))
        created = own_cpu()
        await asyncio.gather(*(client.delete_access_point(AccessPointId=access_point)
                               for access_point in ids))
        deleted = own_cpu()
    return {"create_cpu_ms": (created - before) * 1000 / CALLS,
            "delete_cpu_ms": (deleted - created) * 1000 / CALLS}


def child(args: argparse.Namespace) -> int:
    if args.child == "grpc":
        asyncio.run(serve_grpc(args.socket, args.hooked, args.log))
    else:
        print(json.dumps(asyncio.run(aws_calls(args.endpoint, args.file_system, args.tuned))))
    return 0


async def grpc_row(hooked: bool, work: Path) -> dict[str, float]:
    socket_path = work / f"floor-{time.monotonic_ns()}.sock"
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", "grpc", "--socket", str(socket_path),
        "--log", str(work / "hook.log"), *(["--hooked"] if hooked else []),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None and process.stdin is not None
    try:
        await process.stdout.readline()
        channel = Channel(path=str(socket_path))
        stub = csi.ControllerStub(channel)
        creates = [request(f"pvc-floor-{index}", "fs-12345678") for index in range(CALLS)]
        delete = csi.DeleteVolumeRequest(volume_id="fs-12345678::fsap-0123456789abcdef0")
        await stub.create_volume(creates[0])  # warm up
        await stub.delete_volume(delete)
        figures = {}
        for key, call in (("create_cpu_ms", lambda index: stub.create_volume(creates[index])),
                          ("delete_cpu_ms", lambda index: stub.delete_volume(delete))):
            before = cpu_seconds(process.pid)
            for _ in range(GRPC_ROUNDS):
                await asyncio.gather(*(call(index) for index in range(CALLS)))
            figures[key] = (cpu_seconds(process.pid) - before) * 1000 / (CALLS * GRPC_ROUNDS)
        channel.close()
    finally:
        process.stdin.close()
        await process.wait()
    return figures


async def aws_row(tuned: bool, endpoint: str, moto_url: str) -> dict[str, float]:
    file_system_id = make_file_system(moto_url).file_system_id
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", "aws", "--endpoint", endpoint,
        "--file-system", file_system_id, *(["--tuned"] if tuned else []),
        stdout=asyncio.subprocess.PIPE)
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
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The CPU rows; and, given the controller's image-like interpreter and the chart's
    environment, the libraries-alone row."""
    samples: dict[str, list[dict[str, float]]] = {row: [] for row in ROWS}
    alone: dict[str, list[dict[str, float]]] = {LIBRARIES_ROW: []}
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
            if python:
                alone[LIBRARIES_ROW].append(await libraries_row(python, env, moto.url,
                                                                Path(tmp)))
            print(f"  run {repeat + 1}/{repeats}: "
                  + "; ".join(f"{row}: {runs[-1]}"
                              for row, runs in (*samples.items(), *alone.items()) if runs),
                  flush=True)
    return medians(samples, "floor"), medians(alone, "floor") if python else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one run")
    parser.add_argument("--child", choices=("grpc", "aws"), help=argparse.SUPPRESS)
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
    rows, alone = asyncio.run(measure(1 if args.quick else args.repeats, alone_with))
    print(f"\n{'floor':<30} {'CPU ms per create':>18} {'CPU ms per delete':>18}")
    for row in rows:
        print(f"{row['floor']:<30} {row.get('create_cpu_ms', '-')!s:>18} "
              f"{row.get('delete_cpu_ms', '-')!s:>18}")
    by = {row["floor"]: row for row in rows}
    floors = {call: round(by[ROWS[0]][f"{call}_cpu_ms"] + by[ROWS[3]][f"{call}_cpu_ms"], 3)
              for call in ("create", "delete")}
    print(f"floor under a create / a delete (bare grpclib + tuned aiobotocore): "
          f"{floors['create']} / {floors['delete']} ms")
    for row in alone:
        print(f"{row['floor']}: exec to one EFS call answered {row['exec_to_first_call_s']} s, "
              f"idle RSS {row['idle_rss_mib']} MiB (the controller: bench/startup.py)")
    print(f"load {load_at_start} at start, {load_average()} at end")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "controller_floors.json").write_text(json.dumps(
        {"benchmark": "controller_floors", "rows": rows, "create_floor_ms": floors["create"],
         "delete_floor_ms": floors["delete"], "libraries_alone": alone,
         "load_average_at_start": load_at_start, "load_average_at_end": load_average()},
        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
