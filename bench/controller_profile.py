"""Where the controller's CPU goes per CSI call: a cProfile of the controller binary (its own
process, under ``python -m cProfile``) answering rounds of 200 concurrent CreateVolume calls,
then the 200 DeleteVolume calls, against moto's EFS over HTTP behind the EFS proxy (as
``bench/controller_provisioning.py --parts cpu``).

    python bench/controller_profile.py [--rounds 3] [--top 30]

Prints (and saves in ``bench/results/controller_profile.json``) the own time (``tottime``) of
every function summed by the part of the stack it belongs to (aiobotocore/botocore, aiohttp,
grpclib/h2/hpack, structlog, the standard library's logging, asyncio, the driver...), each as a
share of the profiled total, and the functions with the most own time. The time of the standard
library's other modules and of C built-ins goes to the parts that called them (botocore's
headers are ``email.message``, its signing ``hmac``...), in proportion to the time spent under
each caller. The clock is the controller's main thread's CPU time. Profiling inflates the
total (about 2-3x), so the shares are what count, not the milliseconds; start-up and the
warm-up call are excluded (the profile is enabled after the warm-up, through a signal).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import signal
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from controller_provisioning import (  # noqa: E402
    Controller,
    load_average,
    warm_up,
)

from testbed.efs_proxy import EfsProxy, make_file_system  # noqa: E402
from testbed.moto_server import CREDENTIALS, REGION, running_moto  # noqa: E402
from testbed.processes import start_binary  # noqa: E402

RESULTS = REPO / "bench" / "results"

#: Runs the controller with a profiler that starts on SIGUSR1 and is written out on SIGUSR2
#: (start-up and the warm-up stay out of the profile). Its clock is the main thread's CPU time,
#: so the event loop's idle waits in epoll count for nothing.
PROFILED_MAIN = textwrap.dedent("""
    import cProfile, runpy, signal, sys, time
    profiler = cProfile.Profile(time.thread_time)
    output = sys.argv.pop(1)
    def start(*_):
        profiler.enable()
    def dump(*_):
        profiler.disable()
        profiler.dump_stats(output)
    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, dump)
    sys.argv[0] = "efs_csi_controller"
    runpy.run_module("efs_csi_controller", run_name="__main__", alter_sys=True)
""")

#: (part of the stack, what a path or a built-in's name contains), first match wins.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("aiobotocore/botocore (request, signing, parsing)", ("/botocore/", "/aiobotocore/",
                                                          "/dateutil/", "/jmespath/")),
    ("aiohttp/yarl/multidict (HTTP client)", ("/aiohttp/", "/yarl/", "/multidict/",
                                              "/aiosignal/", "/frozenlist/", "/propcache/",
                                              "/aiohappyeyeballs/")),
    ("grpclib/h2/hpack (the CSI call's server side)", ("/grpclib/", "/h2/", "/hpack/",
                                                       "/hyperframe/")),
    ("betterproto2 (CSI messages)", ("/betterproto2/",)),
    ("structlog (log line)", ("/structlog/",)),
    ("stdlib logging (log line)", ("/logging/",)),
    ("json (log line, botocore)", ("/json/",)),
    ("prometheus_client (metrics)", ("/prometheus_client/",)),
    ("the driver (efs_csi, efs_csi_controller)", ("/efs_csi/", "/efs_csi_controller/")),
    ("asyncio (event loop, streams, tasks)", ("/asyncio/", "selectors.py")),
)


def part_of(filename: str, function: str) -> str | None:
    """The part of the stack a function belongs to; None for the standard library's own
    modules and C built-ins, whose time goes to whoever called them (``attributed``)."""
    for name, needles in PARTS:
        if any(needle in filename for needle in needles):
            return name
    if filename == "~" and any(word in function for word in (
            "'poll' of 'select.epoll'", "'send' of '_socket", "'recv' of '_socket",
            "'recv_into' of '_socket")):
        return "system calls (socket send/recv, epoll)"
    return None


Key = tuple[str, int, str]


def attributed(raw: dict[Key, Any]) -> dict[str, float]:
    """Own time summed by part, the time of standard-library functions and built-ins given to
    the parts that called them (in proportion to the time spent under each caller)."""
    parts: dict[str, float] = {}

    def give(key: Key, seconds: float, depth: int) -> None:
        part = part_of(key[0], key[2])
        if part is not None:
            parts[part] = parts.get(part, 0.0) + seconds
            return
        callers: dict[Key, Any] = raw[key][4] if key in raw else {}
        weights = {caller: figures[2] or figures[1] for caller, figures in callers.items()}
        total = sum(weights.values())
        if depth > 30 or not total:
            name = "the standard library (caller unknown)"
            parts[name] = parts.get(name, 0.0) + seconds
            return
        for caller, weight in weights.items():
            give(caller, seconds * weight / total, depth + 1)

    for key, figures in raw.items():
        if figures[2]:
            give(key, figures[2], 0)
    return parts


async def profile(rounds: int, output: Path) -> dict[str, float]:
    with (running_moto(own_process=True) as moto, EfsProxy(moto.url, seed=7) as proxy,
          tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp):
        work = Path(tmp)
        script = work / "profiled.py"
        script.write_text(PROFILED_MAIN)

        def wrap(argv: list[str]) -> list[str]:
            # argv: python -m efs_csi_controller ARGS...
            return [argv[0], str(script), str(output), *argv[3:]]

        binary = await start_binary(
            "controller", work, ["--region", REGION, "--adaptive-retry-mode=true"],
            env={**proxy.environment(), "AWS_EC2_METADATA_DISABLED": "true"}, wrap=wrap)
        controller = Controller(binary)
        try:
            await warm_up(controller, moto.url)
            os.kill(controller.pid, signal.SIGUSR1)
            await asyncio.sleep(0.2)
            cpu = {"create": 0.0, "delete": 0.0}
            for number in range(rounds):
                file_system_id = make_file_system(moto.url).file_system_id
                ids, _, _, create_cpu = await controller.burst_create(
                    [f"pvc-profile-{number}-{index}" for index in range(200)], file_system_id)
                _, _, delete_cpu = await controller.burst_delete([v for v in ids if v])
                cpu["create"] += create_cpu
                cpu["delete"] += delete_cpu
            os.kill(controller.pid, signal.SIGUSR2)
            for _ in range(100):
                if await asyncio.to_thread(output.exists):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
        finally:
            await controller.binary.stop()
        return {kind: round(seconds * 1000 / (200 * rounds), 3) for kind, seconds in cpu.items()}


def summarise(output: Path, top: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    stats = pstats.Stats(str(output))
    raw: dict[Key, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    functions = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in raw.items():
        functions.append({"function": f"{Path(filename).parent.name}/{Path(filename).name}:"
                                      f"{line}({function})" if filename != "~" else function,
                          "calls": calls, "own_s": round(tottime, 3),
                          "own_share": round(tottime / total, 4),
                          "cumulative_s": round(cumtime, 3)})
    by_part = [{"part": part, "own_s": round(seconds, 3), "share": round(seconds / total, 4)}
               for part, seconds in sorted(attributed(raw).items(), key=lambda item: -item[1])]
    functions.sort(key=lambda row: -row["own_s"])
    return by_part, functions[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 200 creates + deletes")
    parser.add_argument("--top", type=int, default=30, help="functions listed")
    parser.add_argument("--quick", action="store_true", help="one round")
    parser.add_argument("--keep", help="also keep the raw profile (pstats) at this path")
    args = parser.parse_args()
    os.environ.update({**CREDENTIALS, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"})
    rounds = 1 if args.quick else args.rounds
    load_at_start = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-profile-out-") as tmp:
        output = Path(tmp) / "controller.pstats"
        cpu = asyncio.run(profile(rounds, output))
        by_part, functions = summarise(output, args.top)
        if args.keep:
            Path(args.keep).write_bytes(output.read_bytes())
    print(f"profiled CPU per call (inflated by the profiler): create {cpu['create']} ms, "
          f"delete {cpu['delete']} ms; {rounds} rounds of 200 creates + 200 deletes")
    print(f"\n{'part of the stack':<52} {'own s':>8} {'share':>7}")
    for row in by_part:
        print(f"{row['part']:<52} {row['own_s']:>8} {row['share']:>7.1%}")
    print(f"\n{'function':<90} {'calls':>8} {'own s':>7} {'share':>6}")
    for row in functions:
        print(f"{row['function'][:90]:<90} {row['calls']:>8} {row['own_s']:>7} "
              f"{row['own_share']:>6.1%}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "controller_profile.json").write_text(json.dumps(
        {"benchmark": "controller_profile", "rounds": rounds,
         "profiled_cpu_ms_per_call": cpu, "rows": by_part, "top_functions": functions,
         "load_average_at_start": load_at_start, "load_average_at_end": load_average()},
        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
