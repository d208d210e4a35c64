"""Start-up time and idle memory of both binaries, as a node or a controller pays them.

    python bench/startup.py [--repeats 5] [--quick] [--dev-venv]

Each binary runs from an image-like virtualenv (``bench/_image_venv.py``: its wheels, not the
editable dev venv, bytecode compiled as the image build compiles it). For each binary, runs
alternate between binaries: the time from exec until Probe answers ready on its socket, and the
resident memory (VmRSS) once it has been idle for ``IDLE_S`` after that (start-up work done).
For the controller also the time from exec until its first CreateVolume is answered (moto's EFS
API in this process, over HTTP: the first create waits for the AWS client, which is built after
serving begins). Two bytecode states: "compiled" (the image ships bytecode) and "no bytecode"
(an empty ``PYTHONPYCACHEPREFIX``: the first start of an image that does not ship it); and for
the controller a third, "chart env": compiled, with the literal environment the chart gives its
container (``testbed.chart``: ``MALLOC_ARENA_MAX``, ``FROZENLIST_NO_EXTENSIONS``,
``SSL_CERT_FILE``), as a cluster runs it (skipped, with a note, when helm is missing). Medians
of ``--repeats`` runs; the targets of the performance issue beside them. Writes
``bench/results/startup.json``: ``rows`` (every measurement), ``binaries`` (per binary, the
compiled medians ``exec_to_ready_s`` and ``idle_rss_mib`` with their targets) and ``targets``.

Every binary started here gets ``--region``/``--availability-zone`` and
``AWS_EC2_METADATA_DISABLED=true``: nothing may ask instance metadata.

Where the time and memory went (image-like venv, before the change; ``python -X importtime``,
VmRSS after each import in order, tracemalloc; a loaded 2-core machine, so times are rough;
details in docs/performance.md):

- kubernetes-asyncio: importing any part of it loads its ~767 model modules: +0.31 s and
  +35 MiB RSS on top of aiohttp (tracemalloc: 38 MiB more Python heap, nearly all code objects).
  The node imported it for one label and one taint; the controller for
  fileSystemIdConfigRef/SecretRef only.
- aiohttp: ~0.2 s and +9-11 MiB; the node used it only for the metrics endpoint and IMDS (both
  SDKs bring it too).
- aiobotocore + botocore: ~0.22 s and +8.6 MiB to import, more to build the client (the EFS
  model, endpoints); only the controller's EFS calls need them.
- The serving stack, needed before Probe: asyncio with ssl (+10.7 MiB: OpenSSL), the CSI
  messages (betterproto2 dataclasses, +5.6 MiB; descriptor.proto's 64 types come along),
  grpclib, structlog, prometheus-client: ~0.3 s and ~33 MiB in all.

So the node keeps the Kubernetes client out of its long-lived process (a short-lived helper,
``efs_csi_node.startup_work``, does the zone and the taint after serving begins), and both
binaries import aiohttp, the AWS SDK and the Kubernetes client only when a feature needs them,
after serving has begun, in a worker thread.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from grpclib.client import Channel

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _image_venv import image_venvs  # noqa: E402

from efs_csi import csi  # noqa: E402
from testbed.chart import container_env  # noqa: E402
from testbed.moto_server import REGION, MotoEndpoint, create_file_system, running_moto  # noqa: E402
from testbed.processes import rss_mib  # noqa: E402

RESULTS = REPO / "bench" / "results"
#: (exec to ready Probe, idle RSS) per binary; the controller's RSS with its AWS client built
#: (issue 22: 45 MiB; the Go reference v3.4.1: 37 MiB).
TARGETS = {"efs-csi-node": (0.4, 55.0), "efs-csi-controller": (0.6, 45.0)}
#: Issue 22: exec until the controller's first CreateVolume is answered (client built, moto
#: over HTTP).
FIRST_CREATE_TARGET_S = 0.35
IDLE_S = 3.0
Mode = csi.VolumeCapabilityAccessModeMode


def arguments(binary: str, work: Path) -> list[str]:
    common = ["--endpoint", f"unix://{work / 'csi.sock'}", "--log-level", "warning"]
    if binary == "efs-csi-node":
        (work / "root").mkdir(exist_ok=True)
        return [*common, "--node-id", "bench-node", "--availability-zone", "us-east-1a",
                "--region", REGION, "--mount-backend", "local",
                "--local-root", str(work / "root")]
    return [*common, "--region", REGION]


async def wait_ready(socket: Path, process: asyncio.subprocess.Process,
                     limit_s: float) -> None:
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        channel = Channel(path=str(socket))  # refused until the binary listens
        try:
            reply = await csi.IdentityStub(channel).probe(csi.ProbeRequest(), timeout=1)
            if reply.ready:
                return
        except (OSError, TimeoutError):
            pass
        finally:
            channel.close()
        await asyncio.sleep(0.002)
    raise TimeoutError(f"not ready after {limit_s}s")


async def first_create(socket: Path, file_system_id: str, index: int) -> None:
    channel = Channel(path=str(socket))
    try:
        await csi.ControllerStub(channel).create_volume(csi.CreateVolumeRequest(
            name=f"pvc-startup-{index}", capacity_range=csi.CapacityRange(required_bytes=1 << 30),
            volume_capabilities=[csi.VolumeCapability(
                mount=csi.VolumeCapabilityMountVolume(),
                access_mode=csi.VolumeCapabilityAccessMode(mode=Mode.MULTI_NODE_MULTI_WRITER))],
            parameters={"provisioningMode": "efs-ap", "fileSystemId": file_system_id,
                        "directoryPerms": "700"}), timeout=30)
    finally:
        channel.close()


_create_names = itertools.count()  # each first CreateVolume its own volume


async def one_run(bin_dir: Path, binary: str, pycache: Path | None, moto: MotoEndpoint,
                  file_system_id: str, chart_env: dict[str, str] | None = None
                  ) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="efs-csi-startup-") as tmp:
        work = Path(tmp)
        env = {**os.environ, **(chart_env or {}), **moto.environment(),
               "AWS_EC2_METADATA_DISABLED": "true"}
        for variable in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "VIRTUAL_ENV",
                         "PYTHONPATH"):
            env.pop(variable, None)
        if pycache is not None:
            env["PYTHONPYCACHEPREFIX"] = str(pycache)
        socket = work / "csi.sock"
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            str(bin_dir / binary), *arguments(binary, work), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            await wait_ready(socket, process, 60)
            figures = {"ready_s": time.perf_counter() - started}
            if binary == "efs-csi-controller":
                await first_create(socket, file_system_id, next(_create_names))
                figures["create_s"] = time.perf_counter() - started
            await asyncio.sleep(IDLE_S)
            figures["rss_mib"] = rss_mib(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        return figures


#: The workload whose container's environment the "chart env" state adds, per binary.
CHART_WORKLOADS = {"efs-csi-controller": ("Deployment", "efs-csi-controller")}


def chart_envs(binaries: tuple[str, ...]) -> dict[str, dict[str, str]]:
    try:
        return {binary: container_env(*CHART_WORKLOADS[binary])
                for binary in binaries if binary in CHART_WORKLOADS}
    except FileNotFoundError as exc:
        print(f"note: no \"chart env\" row: {exc}")
        return {}


async def measure(repeats: int, bins: dict[str, Path], moto: MotoEndpoint,
                  file_system_id: str, binaries: tuple[str, ...] = tuple(TARGETS)
                  ) -> list[dict[str, Any]]:
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    envs = chart_envs(binaries)
    for binary in binaries:  # warm-up, not counted: the first exec pays the page cache
        await one_run(bins[binary], binary, None, moto, file_system_id)
    for _ in range(repeats):
        for binary in binaries:
            samples.setdefault((binary, "compiled"), []).append(
                await one_run(bins[binary], binary, None, moto, file_system_id))
            with tempfile.TemporaryDirectory(prefix="efs-csi-pycache-") as empty:
                samples.setdefault((binary, "no bytecode"), []).append(
                    await one_run(bins[binary], binary, Path(empty), moto, file_system_id))
            if binary in envs:
                samples.setdefault((binary, "chart env"), []).append(
                    await one_run(bins[binary], binary, None, moto, file_system_id,
                                  envs[binary]))
    rows = []
    for (binary, bytecode), runs in samples.items():
        ready = statistics.median(run["ready_s"] for run in runs)
        rss = statistics.median(run["rss_mib"] for run in runs)
        target_s, target_mib = TARGETS[binary]
        row: dict[str, Any] = {
            "binary": binary, "bytecode": bytecode, "runs": len(runs),
            "exec_to_ready_s": round(ready, 3), "target_s": target_s,
            "idle_rss_mib": round(rss, 1), "target_mib": target_mib,
            # The targets are for images, which ship compiled bytecode.
            "met": (ready <= target_s and rss <= target_mib)
            if bytecode in ("compiled", "chart env") else "-"}
        if binary == "efs-csi-controller":
            row["exec_to_first_create_s"] = round(
                statistics.median(run["create_s"] for run in runs), 3)
        rows.append(row)
    return rows


def summary(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Per binary, the compiled medians and their targets; the targets list for run_all."""
    binaries: dict[str, Any] = {}
    targets: list[dict[str, Any]] = []
    for row in rows:
        if row["bytecode"] != "compiled":
            continue
        binary = row["binary"]
        binaries[binary] = {key: row[key] for key in row
                            if key not in ("binary", "bytecode", "met")}
        targets += [
            {"target": f"{binary}: exec to ready Probe <= {row['target_s']} s",
             "figure": row["exec_to_ready_s"], "met": row["exec_to_ready_s"] <= row["target_s"]},
            {"target": f"{binary}: idle RSS <= {row['target_mib']} MiB",
             "figure": row["idle_rss_mib"], "met": row["idle_rss_mib"] <= row["target_mib"]},
        ]
        if "exec_to_first_create_s" in row:
            targets.append(
                {"target": f"{binary}: exec to first CreateVolume answered <= "
                           f"{FIRST_CREATE_TARGET_S} s", "figure": row["exec_to_first_create_s"],
                 "met": row["exec_to_first_create_s"] <= FIRST_CREATE_TARGET_S})
    return binaries, targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one run of each")
    parser.add_argument("--dev-venv", action="store_true",
                        help="run the binaries of this interpreter's venv (editable) instead")
    parser.add_argument("--only", choices=tuple(TARGETS), help="measure one binary only")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    dev = dict.fromkeys(TARGETS, Path(sys.executable).parent)
    bins = dev if args.dev_venv else image_venvs()
    load_at_start = list(os.getloadavg())
    with running_moto(own_process=True) as moto:
        file_system_id = create_file_system(moto)
        rows = asyncio.run(measure(repeats, bins, moto, file_system_id,
                                   (args.only,) if args.only else tuple(TARGETS)))
    print(f"{'binary':<20} {'bytecode':<12} {'exec->ready s':>14} {'target':>7} "
          f"{'idle RSS MiB':>13} {'target':>7} {'exec->1st create s':>19}  met")
    for row in rows:
        print(f"{row['binary']:<20} {row['bytecode']:<12} {row['exec_to_ready_s']:>14} "
              f"{row['target_s']:>7} {row['idle_rss_mib']:>13} {row['target_mib']:>7} "
              f"{row.get('exec_to_first_create_s', ''):>19}  {row['met']}")
    load = list(os.getloadavg())
    print(f"(median of {repeats}; load average {load_at_start[0]:.2f} at start, "
          f"{load[0]:.2f} at end; targets apply to the compiled state; "
          f"{'dev' if args.dev_venv else 'image-like'} venv)")
    binaries, targets = summary(rows)
    RESULTS.mkdir(exist_ok=True)
    saved = "startup.json" if not args.only else f"startup.{args.only}.json"
    (RESULTS / saved).write_text(json.dumps(
        {"rows": rows, "binaries": binaries, "targets": targets, "repeats": repeats,
         "venv": "dev" if args.dev_venv else "image-like",
         "load_average_at_start": load_at_start, "load_average_at_end": load,
         "idle_s": IDLE_S}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
