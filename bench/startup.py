"""Start-up time and idle memory of both binaries, as a node or a controller pays them.

    python bench/startup.py [--repeats 5] [--quick]

For each binary, alternating runs: the time from exec until Probe answers ready on its socket,
and the resident memory (VmRSS) once it has been idle for a while after that (start-up work
done). Two bytecode states: "compiled" (the bytecode cache exists, as in an image that ships
it) and "no bytecode" (an empty ``PYTHONPYCACHEPREFIX``, as in an image that does not).
Medians of ``--repeats`` runs; targets from the performance issue are printed beside them.
Writes ``bench/results/startup.json``.

Every binary started here gets ``--region``/``--availability-zone`` and
``AWS_EC2_METADATA_DISABLED=true``: nothing may ask instance metadata.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grpclib.client import Channel

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from efs_csi import csi  # noqa: E402

BIN = Path(sys.executable).parent
RESULTS = REPO / "bench" / "results"
TARGETS = {"efs-csi-node": (0.4, 55.0), "efs-csi-controller": (0.6, 65.0)}
IDLE_S = 3.0


def arguments(binary: str, work: Path) -> list[str]:
    common = ["--endpoint", f"unix://{work / 'csi.sock'}", "--log-level", "warning"]
    if binary == "efs-csi-node":
        (work / "root").mkdir(exist_ok=True)
        return [*common, "--node-id", "bench-node", "--availability-zone", "us-east-1a",
                "--region", "us-east-1", "--mount-backend", "local",
                "--local-root", str(work / "root")]
    return [*common, "--region", "us-east-1"]


async def wait_ready(socket: Path, process: subprocess.Popen[bytes], limit_s: float) -> None:
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        if socket.exists():
            channel = Channel(path=str(socket))
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


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def one_run(binary: str, pycache: Path | None) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="efs-csi-startup-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true",
               "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
        for variable in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            env.pop(variable, None)
        if pycache is not None:
            env["PYTHONPYCACHEPREFIX"] = str(pycache)
        started = time.perf_counter()
        process = subprocess.Popen([str(BIN / binary), *arguments(binary, work)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await wait_ready(work / "csi.sock", process, 60)
            ready_s = time.perf_counter() - started
            await asyncio.sleep(IDLE_S)
            rss = rss_mib(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return ready_s, rss


async def measure(repeats: int) -> list[dict[str, object]]:
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(repeats):
        for binary in TARGETS:
            # Warm the compiled bytecode first (a previous run, or the image build, did it).
            samples.setdefault((binary, "compiled"), []).append(await one_run(binary, None))
            with tempfile.TemporaryDirectory(prefix="efs-csi-pycache-") as empty:
                samples.setdefault((binary, "no bytecode"), []).append(
                    await one_run(binary, Path(empty)))
    rows = []
    for (binary, bytecode), runs in samples.items():
        ready = statistics.median(run[0] for run in runs)
        rss = statistics.median(run[1] for run in runs)
        target_s, target_mib = TARGETS[binary]
        rows.append({"binary": binary, "bytecode": bytecode, "runs": len(runs),
                     "exec_to_ready_s": round(ready, 3), "target_s": target_s,
                     "idle_rss_mib": round(rss, 1), "target_mib": target_mib,
                     "met": bytecode != "compiled" or (ready <= target_s
                                                        and rss <= target_mib)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one run of each")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    rows = asyncio.run(measure(repeats))
    print(f"{'binary':<20} {'bytecode':<12} {'exec->ready s':>14} {'target':>7} "
          f"{'idle RSS MiB':>13} {'target':>7}  met")
    for row in rows:
        print(f"{row['binary']:<20} {row['bytecode']:<12} {row['exec_to_ready_s']:>14} "
              f"{row['target_s']:>7} {row['idle_rss_mib']:>13} {row['target_mib']:>7}  "
              f"{row['met']}")
    load = os.getloadavg()[0]
    print(f"(median of {repeats}; load average {load:.2f}; "
          "targets apply to the compiled state)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps(
        {"rows": rows, "repeats": repeats, "load_average": load, "idle_s": IDLE_S}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
