"""The node from exec until registered: when NodeGetInfo answers (with the zone, or without it
when the start-up helper fails), and the peak memory of its whole process tree, the start-up
helper included, in a pod's view of the world.

    python bench/node_registration.py [--repeats 5] [--quick] [--dev-venv]

Root only (network, mount and cgroup namespaces of its own). The benchmark re-runs itself under
``unshare --net``: a network namespace holding only loopback, where a fake instance-metadata
service (testbed/imds.py) and a fake Kubernetes API over TLS (testbed/kube_api.py) listen on
127.0.0.1, so nothing can reach 169.254.169.254 or any other address. The node runs from its
image-like venv (``bench/_image_venv.py``) as its pod would (testbed/in_cluster.py: the service
account at the in-cluster path, the API at an https:// address), without
``--availability-zone``, inside a memory cgroup of its own (testbed/cgroups.py); it is timed
from its exec (the pod is made first, then told to go).

Scenarios, each a row:

- ``imds``: instance metadata knows the zone (issue 22's target: exec until NodeGetInfo answers
  with it, at most 0.4 s); the helper removes the startup taint once kubelet (played here: it
  lists the driver in CSINode after NodeGetInfo) has registered the node;
- ``label``: no instance metadata; the zone comes from the Node's label, read by the helper;
- ``helper crashes``: the helper aborts on every start (a ``sitecustomize`` on its path);
- ``api unreachable``: nothing answers at the API's address;
- ``tight limit``: no instance metadata, and a memory limit of the node's idle charge plus
  16 MiB: the helper (the kernel's first OOM victim) is killed on every start;
- ``documented request``: a memory limit as low as the memory request the chart documents for
  the node (helm/values.yaml; its documented limit is higher): the whole start-up fits, no OOM
  kill.

Figures (medians): ``exec_to_info_s`` (until NodeGetInfo answered), ``exec_to_ready_s`` (until
Probe answered ready, polled beside it) and their difference ``ready_to_info_s`` (what learning
the zone, or giving up on it, added), whether it had the zone,
``exec_to_registered_s`` (NodeGetInfo answered, the taint removed, the helper gone: in the
failing scenarios the helper never finishes, so this stays empty), ``peak_mib`` (the most memory
the kernel charged to the node's cgroup from exec until registered, or for ``FAILING_WINDOW_S``
after NodeGetInfo when the helper keeps failing: what the OOM killer judges by),
``peak_tree_rss_mib`` (the largest sum of the tree's RSS, sampled every 5 ms: shared pages
counted in each process), ``idle_mib`` (the cgroup's charge, and the node's RSS, ``IDLE_S``
later) and ``oom_kills``. Writes ``bench/results/node_registration.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from grpclib.client import Channel  # noqa: E402

from efs_csi import csi  # noqa: E402
from efs_csi.contract import NOT_READY_TAINT, PLUGIN_NAME, TOPOLOGY_ZONE_KEY  # noqa: E402
from testbed.cgroups import MemoryCgroup, memory_cgroup  # noqa: E402
from testbed.imds import running_imds  # noqa: E402
from testbed.in_cluster import (  # noqa: E402
    SERVICE_ACCOUNT_PATH,
    in_cluster_environment,
    pod_command,
    service_account_files,
)
from testbed.kube_api import FakeKubeApi, TlsFiles  # noqa: E402
from testbed.processes import rss_bytes  # noqa: E402

RESULTS = REPO / "bench" / "results"
VALUES = REPO / "helm" / "values.yaml"
NODE = "bench-node"
IMDS_ZONE = "us-east-1a"
LABEL_ZONE = "us-east-1c"
TARGET_INFO_S = 0.4  # issue 22: exec until NodeGetInfo answers with the zone from IMDS
IDLE_S = 3.0
FAILING_WINDOW_S = 5.0  # how long after NodeGetInfo a failing helper's memory is watched
TIGHT_HEADROOM = 16 << 20
CRASHING_HELPER = ('import os, sys\n'
                   'if "efs_csi_node.startup_work" in sys.orig_argv:\n'
                   '    os.abort()\n')
SCENARIOS = ("imds", "label", "helper crashes", "api unreachable", "tight limit",
             "documented request")
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def documented_memory_mib() -> dict[str, int]:
    """The node's memory request and limit helm/values.yaml documents (the commented
    ``resources`` example of its ``node:`` section)."""
    node_section = VALUES.read_text().split("\nnode:", 1)[1]
    figures = {}
    for kind in ("requests", "limits"):
        found = re.search(rf"#\s+{kind}:\s*\{{[^}}]*memory:\s*(\d+)Mi\s*\}}", node_section)
        if found is None:
            raise RuntimeError(f"{VALUES} documents no node memory {kind} "
                               f"({kind}: {{memory: NMi}})")
        figures[kind] = int(found.group(1))
    return figures


def loopback_up() -> None:
    """Bring ``lo`` up in this (new) network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(probe, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def tree_rss_bytes(pid: int) -> int:
    """The summed RSS of ``pid`` and its descendants (0 for those already gone)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += rss_bytes(current)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
    return total


def pod_made(pid: int) -> bool:
    """Whether the pod's service account is in place, seen through its root (its own mounts;
    symlinks such as /var/run resolved here, where they are the same)."""
    account = Path(SERVICE_ACCOUNT_PATH).resolve().relative_to("/")
    return (Path(f"/proc/{pid}/root") / account / "namespace").exists()


def children(pid: int) -> list[int]:
    return [int(child) for child in
            Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@dataclass
class Run:
    scenario: str
    exec_to_ready_s: float
    exec_to_info_s: float
    zone: str | None
    exec_to_registered_s: float | None
    peak_mib: float
    peak_tree_rss_mib: float
    idle_mib: float
    idle_node_rss_mib: float
    oom_kills: int


async def node_get_info(socket_path: Path, process: asyncio.subprocess.Process
                        ) -> csi.NodeGetInfoResponse:
    """NodeGetInfo as kubelet sends it (a long deadline), as soon as the socket takes it."""
    while True:
        if process.returncode is not None:
            raise RuntimeError(f"the node exited with {process.returncode}")
        channel = Channel(path=str(socket_path))
        try:
            return await csi.NodeStub(channel).node_get_info(csi.NodeGetInfoRequest(),
                                                             timeout=120)
        except (OSError, ConnectionError):
            await asyncio.sleep(0.002)
        finally:
            channel.close()


async def probe_ready(socket_path: Path, started: float) -> float:
    """Seconds from ``started`` until Probe answers ready (beside the NodeGetInfo call: what
    the node's start-up costs before any zone is looked for)."""
    while True:
        channel = Channel(path=str(socket_path))
        try:
            if (await csi.IdentityStub(channel).probe(csi.ProbeRequest(), timeout=5)).ready:
                return time.perf_counter() - started
        except (OSError, ConnectionError, TimeoutError):
            pass
        finally:
            channel.close()
        await asyncio.sleep(0.002)


async def sample_tree(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], tree_rss_bytes(pid))
        await asyncio.sleep(0.005)


async def one_run(scenario: str, node_bin: Path, work: Path, *, limit: int | None,
                  idle_charge: int | None) -> Run:
    tls = TlsFiles.create(work / "tls")
    api = FakeKubeApi()
    api.add_node(NODE, taints=[{"key": NOT_READY_TAINT, "effect": "NoExecute"}],
                 labels={TOPOLOGY_ZONE_KEY: LABEL_ZONE})
    api.set_csinode(NODE, [])  # kubelet lists the driver once NodeGetInfo answered
    await api.start(tls)
    env = {key: value for key, value in os.environ.items()
           if key not in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "VIRTUAL_ENV",
                          "PYTHONPATH")}
    env.update(in_cluster_environment(api.port if scenario != "api unreachable" else 9))
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    if scenario == "helper crashes":
        site = work / "crashing-helper"
        site.mkdir()
        (site / "sitecustomize.py").write_text(CRASHING_HELPER)
        env["PYTHONPATH"] = str(site)
    if scenario == "tight limit":
        assert idle_charge is not None
        limit = idle_charge + TIGHT_HEADROOM
    account = service_account_files(work / "sa", api.token, tls.certificate)
    (work / "root").mkdir()
    socket_path = work / "csi.sock"
    argv = [str(node_bin / "efs-csi-node"), "--endpoint", f"unix://{socket_path}",
            "--node-id", NODE, "--mount-backend", "local", "--local-root", str(work / "root"),
            "--region", "us-east-1", "--log-level", "warning"]
    try:
        async with running_imds() as imds:
            imds.zone = IMDS_ZONE
            if scenario in ("imds", "documented request"):
                env.update(imds.environment())
            with memory_cgroup(limit, name="efs-csi-bench-node") as cgroup:
                return await _measure(scenario, cgroup, pod_command(argv, account,
                                                                    wait_for_go=True),
                                      env, socket_path, api, work)
    finally:
        await api.stop()


async def _measure(scenario: str, cgroup: MemoryCgroup, argv: list[str], env: dict[str, str],
                   socket_path: Path, api: FakeKubeApi, work: Path) -> Run:
    log = (work / "node.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        *cgroup.command(argv), env=env, stdin=asyncio.subprocess.PIPE, stdout=log,
        stderr=subprocess.STDOUT)
    assert process.stdin is not None
    try:
        while not pod_made(process.pid):
            if process.returncode is not None:
                raise RuntimeError(f"the pod did not start: {(work / 'node.log').read_text()}")
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the shell is at its `read`
        peak_rss = [0]
        stop_sampling = asyncio.Event()
        started = time.perf_counter()
        process.stdin.write(b"go\n")
        sampler = asyncio.create_task(sample_tree(process.pid, peak_rss, stop_sampling))
        ready = asyncio.create_task(probe_ready(socket_path, started))
        reply = await node_get_info(socket_path, process)
        info_s = time.perf_counter() - started
        ready_s = await asyncio.wait_for(ready, 60)
        api.set_csinode(NODE, [PLUGIN_NAME])  # kubelet registers the driver
        registered_s: float | None = None
        deadline = time.perf_counter() + (60 if scenario in ("imds", "label",
                                                             "documented request")
                                          else FAILING_WINDOW_S)
        while time.perf_counter() < deadline:
            if not api.taints(NODE) and not children(process.pid):  # the helper is gone
                registered_s = time.perf_counter() - started
                break
            await asyncio.sleep(0.005)
        stop_sampling.set()
        await sampler
        peak = cgroup.peak_bytes()
        await asyncio.sleep(IDLE_S)
        topology = reply.accessible_topology
        return Run(scenario=scenario, exec_to_ready_s=ready_s, exec_to_info_s=info_s,
                   zone=topology.segments.get(TOPOLOGY_ZONE_KEY) if topology else None,
                   exec_to_registered_s=registered_s, peak_mib=peak / 2**20,
                   peak_tree_rss_mib=peak_rss[0] / 2**20, idle_mib=cgroup.usage_bytes() / 2**20,
                   idle_node_rss_mib=rss_bytes(process.pid) / 2**20,
                   oom_kills=cgroup.oom_kills())
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


def summarise(scenario: str, runs: list[Run], documented_mib: int) -> dict[str, Any]:
    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 3) if values else None

    registered = [run.exec_to_registered_s for run in runs
                  if run.exec_to_registered_s is not None]
    row: dict[str, Any] = {
        "scenario": scenario, "runs": len(runs),
        "exec_to_ready_s": median([run.exec_to_ready_s for run in runs]),
        "exec_to_info_s": median([run.exec_to_info_s for run in runs]),
        # What learning the zone (or giving up on it) added to the node's own start-up.
        "ready_to_info_s": median([run.exec_to_info_s - run.exec_to_ready_s for run in runs]),
        "zone": ",".join(sorted({run.zone or "(none)" for run in runs})),
        "exec_to_registered_s": median(registered) if len(registered) == len(runs) else None,
        "peak_mib": median([run.peak_mib for run in runs]),
        "peak_tree_rss_mib": median([run.peak_tree_rss_mib for run in runs]),
        "idle_mib": median([run.idle_mib for run in runs]),
        "idle_node_rss_mib": median([run.idle_node_rss_mib for run in runs]),
        "oom_kills": max(run.oom_kills for run in runs),
    }
    if scenario == "documented request":
        row["limit_mib"] = documented_mib
    return row


async def measure(node_bin: Path, repeats: int, slow_repeats: int,
                  documented_mib: int, scenarios: tuple[str, ...] = SCENARIOS
                  ) -> list[dict[str, Any]]:
    rows = []
    idle_charge: int | None = None
    for scenario in scenarios:
        runs = []
        count = repeats if scenario in ("imds", "label", "documented request") else slow_repeats
        for _ in range(count):
            with tempfile.TemporaryDirectory(prefix="efs-csi-registration-") as tmp:
                run = await one_run(scenario, node_bin, Path(tmp),
                                    limit=documented_mib << 20
                                    if scenario == "documented request" else None,
                                    idle_charge=idle_charge)
            runs.append(run)
        if scenario == "imds":
            idle_charge = int(statistics.median(run.idle_mib for run in runs) * 2**20)
        rows.append(summarise(scenario, runs, documented_mib))
    return rows


def targets(rows: list[dict[str, Any]], load: float) -> list[dict[str, Any]]:
    by = {row["scenario"]: row for row in rows}
    found: list[dict[str, Any]] = []
    imds = by.get("imds")
    if imds is not None:
        info: dict[str, Any] = {
            "target": f"node: exec to NodeGetInfo with the zone from instance metadata <= "
                      f"{TARGET_INFO_S} s", "figure": imds["exec_to_info_s"],
            "met": imds["zone"] == IMDS_ZONE and imds["exec_to_info_s"] <= TARGET_INFO_S}
        if not info["met"]:
            info["in_the_way"] = (f"the node's own start-up: exec to ready Probe took "
                                  f"{imds['exec_to_ready_s']} s (load average {load:.1f}); "
                                  f"learning the zone added {imds['ready_to_info_s']} s")
        found.append(info)
    documented = by.get("documented request")
    if documented is None or len(rows) < len(SCENARIOS):
        return found
    peak = max(row["peak_mib"] for row in rows
               if row["scenario"] in ("imds", "label", "documented request"))
    return [
        *found,
        {"target": "node: NodeGetInfo answers with every start-up helper failure",
         "figure": max(row["exec_to_info_s"] for row in rows),
         "met": all(row["exec_to_info_s"] is not None for row in rows)},
        {"target": f"node: start-up peak (helper included) fits the documented memory request "
                   f"{documented['limit_mib']} MiB as a limit, no OOM kill",
         "figure": peak, "met": peak <= documented["limit_mib"] and documented["oom_kills"] == 0},
    ]


def inside(args: argparse.Namespace) -> int:
    """The measurements, in the loopback-only network namespace."""
    loopback_up()
    node_bin = Path(args.node_bin)
    documented = documented_memory_mib()
    if documented["requests"] > documented["limits"]:
        raise RuntimeError(f"{VALUES}: the documented request exceeds the limit")
    repeats = 1 if args.quick else args.repeats
    slow = 1 if args.quick else max(1, min(args.repeats, 3))
    scenarios = tuple(args.scenarios.split(",")) if args.scenarios else SCENARIOS
    rows = asyncio.run(measure(node_bin, repeats, slow, documented["requests"], scenarios))
    Path(args.output).write_text(json.dumps(rows))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one run of each")
    parser.add_argument("--dev-venv", action="store_true",
                        help="run this interpreter's venv (editable) instead")
    parser.add_argument("--scenarios", default="",
                        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--node-bin", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        return inside(args)
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("findmnt"):
        print("needs root and util-linux's unshare and findmnt (namespaces, cgroups)",
              file=sys.stderr)
        return 2
    if args.dev_venv:
        node_bin = Path(sys.executable).parent
    else:
        from _image_venv import image_venvs

        node_bin = image_venvs()["efs-csi-node"]
    load_at_start = list(os.getloadavg())
    with tempfile.NamedTemporaryFile(suffix=".json") as output:
        subprocess.run(["unshare", "--net", "--", sys.executable, __file__, "--inside",
                        "--node-bin", str(node_bin), "--output", output.name,
                        "--repeats", str(args.repeats), "--scenarios", args.scenarios,
                        *(["--quick"] if args.quick else [])],
                       check=True)
        rows = json.loads(Path(output.name).read_text())
    load = list(os.getloadavg())
    columns = ("scenario", "runs", "exec_to_ready_s", "exec_to_info_s", "ready_to_info_s",
               "zone", "exec_to_registered_s", "peak_mib",
               "peak_tree_rss_mib", "idle_mib", "idle_node_rss_mib", "oom_kills")
    print(" ".join(f"{name:>17}" if index else f"{name:<18}"
                   for index, name in enumerate(columns)))
    for row in rows:
        print(" ".join(f"{row.get(name, '')!s:>17}" if index else f"{row[name]:<18}"
                       for index, name in enumerate(columns)))
    checked = targets(rows, load_at_start[0])
    for item in checked:
        print(f"{'met' if item['met'] else 'NOT met'}: {item['target']} ({item['figure']})"
              + (f"; in the way: {item['in_the_way']}" if "in_the_way" in item else ""))
    print(f"(medians; load average {load_at_start[0]:.2f} at start, {load[0]:.2f} at end; "
          f"{'dev' if args.dev_venv else 'image-like'} venv; MiB as the node's cgroup was "
          "charged, RSS summed over its processes)")
    RESULTS.mkdir(exist_ok=True)
    saved = ("node_registration.json" if not args.scenarios else
             f"node_registration.{args.scenarios.replace(',', '-').replace(' ', '_')}.json")
    (RESULTS / saved).write_text(json.dumps(
        {"rows": rows, "targets": checked, "repeats": args.repeats, "quick": args.quick,
         "venv": "dev" if args.dev_venv else "image-like", "idle_s": IDLE_S,
         "failing_window_s": FAILING_WINDOW_S, "load_average_at_start": load_at_start,
         "load_average_at_end": load}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
