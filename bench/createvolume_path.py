"""The CreateVolume path: which driver modules one CreateVolume runs, and how often it enters each.

    python bench/createvolume_path.py [--doors] [--output NAME]

The real efs-csi-controller, assembled by its own composition root (``run_controller``: the
deferred EFS client, the gRPC hook, the provisioner, the GID allocator, the aiobotocore adapter),
serves on a unix socket in this process against moto's EFS over HTTP on loopback. One create
warms it up (the client is built, the file system listed); the next create, of a new volume, is
traced with ``sys.setprofile`` in the event loop's thread (moto's server threads are not).

What is counted, for driver modules only (``efs_csi``, ``efs_csi_controller``,
``efs_csi_node``; the generated CSI messages excluded):

- ``calls``: the functions of the module that ran (fresh calls; a coroutine resumed after an
  ``await`` is not called again);
- ``entered``: calls made into the module from another driver module (how often the path comes
  in through its door);
- ``stays``: the walk down and back up the call tree (each call goes to the callee's module, each
  return back to the caller's), consecutive steps in one module merged: how often the path is in
  the module. ``returns`` = stays - modules: how often it comes back to a module it had left.

Two walks: from the gRPC server down (``rpc``), and from the service's ``create_volume`` down
(``service``, the review's walk). Saves ``bench/results/<NAME>.json`` (default
``createvolume_path``) and prints the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from grpclib.client import Channel  # noqa: E402

from efs_csi import csi  # noqa: E402
from testbed.csi_builders import create_request  # noqa: E402
from testbed.moto_server import REGION, create_file_system, running_moto  # noqa: E402

DRIVER_PACKAGES = ("efs_csi", "efs_csi_controller", "efs_csi_node")
EXCLUDED = ("efs_csi.csi",)
Mode = csi.VolumeCapabilityAccessModeMode


def is_driver(module: str) -> bool:
    top = module.split(".", 1)[0]
    return top in DRIVER_PACKAGES and not any(
        module == prefix or module.startswith(prefix + ".") for prefix in EXCLUDED)


@dataclass
class Call:
    module: str
    function: str
    children: list[Call] = field(default_factory=list)


@dataclass
class Tracer:
    """Builds the tree of driver calls (fresh ones only) from profile events."""

    roots: list[Call] = field(default_factory=list)
    _calls: dict[int, Call] = field(default_factory=dict)
    _frames: list[FrameType] = field(default_factory=list)  # kept alive: ids stay unique

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        if not is_driver(module) or id(frame) in self._calls:
            return  # not ours, or a coroutine resumed after an await
        call = Call(module, frame.f_code.co_qualname)
        self._calls[id(frame)] = call
        self._frames.append(frame)
        parent = frame.f_back
        while parent is not None and id(parent) not in self._calls:
            parent = parent.f_back
        (self._calls[id(parent)].children if parent is not None else self.roots).append(call)


def walk(root: Call) -> list[str]:
    """The modules the path is in, down and back up the tree, consecutive repeats merged."""
    steps: list[str] = []

    def visit(call: Call) -> None:
        steps.append(call.module)
        for child in call.children:
            visit(child)
            steps.append(call.module)

    visit(root)
    return [module for index, module in enumerate(steps)
            if index == 0 or steps[index - 1] != module]


def figures(root: Call) -> dict[str, Any]:
    calls: Counter[str] = Counter()
    entered: Counter[str] = Counter()
    doors: Counter[str] = Counter()  # "caller -> callee" for the calls that enter a module

    def count(call: Call, caller: Call | None) -> None:
        calls[call.module] += 1
        if caller is not None and caller.module != call.module:
            entered[call.module] += 1
            doors[f"{caller.module}.{caller.function} -> {call.module}.{call.function}"] += 1
        for child in call.children:
            count(child, call)

    count(root, None)
    stays_walk = walk(root)
    stays = Counter(stays_walk)
    rows = [{"module": module, "calls": calls[module], "entered": entered[module],
             "stays": stays[module]} for module in sorted(calls, key=lambda m: (-stays[m], m))]
    return {"modules": len(calls), "calls": sum(calls.values()),
            "entered": sum(entered.values()), "stays": len(stays_walk),
            "returns": len(stays_walk) - len(calls), "rows": rows,
            "doors": dict(sorted(doors.items()))}


PVC = {"csi.storage.k8s.io/pvc/name": "claim", "csi.storage.k8s.io/pvc/namespace": "default"}


def find(calls: list[Call], module: str, function: str) -> Call | None:
    for call in calls:
        if call.module == module and call.function == function:
            return call
        found = find(call.children, module, function)
        if found is not None:
            return found
    return None


async def traced_create(socket_path: str, fs_id: str) -> Tracer:
    from efs_csi_controller.__main__ import build_parser, controller_config
    from efs_csi_controller.app import run_controller

    parser = build_parser({})
    args = parser.parse_args(["--endpoint", f"unix://{socket_path}", "--region", REGION,
                              "--log-level", "error"])
    config = controller_config(parser, args, os.environ)
    server = asyncio.create_task(run_controller(config=config))
    try:
        for _ in range(500):
            if os.path.exists(socket_path):  # noqa: ASYNC240 - one stat, while it starts
                break
            await asyncio.sleep(0.01)
        channel = Channel(path=socket_path)
        try:
            stub = csi.ControllerStub(channel)
            await stub.create_volume(create_request("pvc-warm-up", fs_id, **PVC), timeout=60)
            tracer = Tracer()
            sys.setprofile(tracer.profile)
            try:
                await stub.create_volume(create_request("pvc-traced", fs_id, **PVC),
                                         timeout=60)
            finally:
                sys.setprofile(None)
        finally:
            channel.close()
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    return tracer


def print_table(title: str, data: dict[str, Any]) -> None:
    print(f"\n{title}: {data['modules']} modules, {data['stays']} stays, "
          f"{data['returns']} returns, {data['entered']} entries, {data['calls']} calls")
    print(f"  {'module':52} {'calls':>6} {'entered':>8} {'stays':>6}")
    for row in data["rows"]:
        print(f"  {row['module']:52} {row['calls']:>6} {row['entered']:>8} {row['stays']:>6}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="accepted for bench/run_all.py: one create is already quick")
    parser.add_argument("--doors", action="store_true",
                        help="also print each call that enters a module (caller -> callee)")
    parser.add_argument("--output", default="createvolume_path",
                        help="results file name under bench/results (without .json)")
    args = parser.parse_args()
    from efs_csi.logging import configure_logging

    configure_logging("console", "error")
    with running_moto(own_process=True) as moto, tempfile.TemporaryDirectory() as scratch:
        for key, value in moto.environment().items():
            os.environ[key] = value
        fs_id = create_file_system(moto)
        started = time.monotonic()
        tracer = asyncio.run(traced_create(str(Path(scratch) / "csi.sock"), fs_id))
        seconds = time.monotonic() - started
    service = find(tracer.roots, "efs_csi_controller.service",
                   "ControllerService.create_volume")
    server = next((root for root in tracer.roots if service is not None
                   and find([root], service.module, service.function) is service), None)
    if service is None:
        print("the traced create never reached ControllerService.create_volume", file=sys.stderr)
        return 1
    report: dict[str, Any] = {"benchmark": "createvolume_path", "seconds": round(seconds, 2)}
    report["service"] = figures(service)
    if server is not None:
        report["rpc"] = figures(server)
    report["rows"] = report["service"]["rows"]
    for name in ("rpc", "service"):
        if name in report:
            print_table(f"CreateVolume from the {name} down", report[name])
    if args.doors:
        for door, count in report["service"]["doors"].items():
            print(f"  {count:>3}  {door}")
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{args.output}.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
