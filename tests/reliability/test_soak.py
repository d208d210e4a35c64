"""Soak: 1,000 full volume lifecycles through the real binaries, 20 at a time.

create → stage → publish → unpublish → unstage → delete, as csi-provisioner and kubelet
drive them. Nothing may pile up: no mounts, access points or target directories left, and
each binary's open file descriptors, threads (a stand-in for leaked asyncio tasks, which are
invisible from outside the process) and RSS at the end match what they were after the first
100 lifecycles (RSS within 20%). Figures are measured at quiet points (no call in flight).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from efs_csi import csi
from testbed.efs_proxy import EfsProxy
from testbed.moto_server import MotoEndpoint
from tests.reliability.support import (
    Lab,
    ProcessFigures,
    capability,
    create_request,
    lab,
    mounts_under,
    process_figures,
)
from tests.support.ci import require_root

LIFECYCLES = 1000
WARM_UP = 100
CONCURRENCY = 20
# Connection pools may open a few more sockets once, never one per volume: the controller's
# listings that settle each create's GID run beside other creates, so its pool may reach its
# peak (bounded by max_pool_connections) after the warm-up; a leak would be hundreds.
FD_SLACK = 8
THREAD_SLACK = 2


async def lifecycle(env: Lab, number: int) -> None:
    name = f"pvc-soak-{number:05d}"
    controller, node = env.controller.controller(), env.node.node()
    reply = await controller.create_volume(create_request(name, env.file_system_id),
                                           timeout=30)
    assert reply.volume is not None
    volume_id = reply.volume.volume_id
    staging, target = env.staging_path(name), env.target_path(f"pod-{name}", name)
    await node.node_stage_volume(csi.NodeStageVolumeRequest(
        volume_id=volume_id, staging_target_path=str(staging), volume_capability=capability(),
        volume_context=dict(reply.volume.volume_context)), timeout=30)
    await node.node_publish_volume(csi.NodePublishVolumeRequest(
        volume_id=volume_id, staging_target_path=str(staging), target_path=str(target),
        volume_capability=capability(), volume_context=dict(reply.volume.volume_context)),
        timeout=30)
    await node.node_unpublish_volume(csi.NodeUnpublishVolumeRequest(
        volume_id=volume_id, target_path=str(target)), timeout=30)
    await node.node_unstage_volume(csi.NodeUnstageVolumeRequest(
        volume_id=volume_id, staging_target_path=str(staging)), timeout=30)
    await controller.delete_volume(csi.DeleteVolumeRequest(volume_id=volume_id), timeout=30)


async def run(env: Lab, numbers: range) -> float:
    """Run the lifecycles ``CONCURRENCY`` at a time; returns lifecycles per second."""
    queue = iter(numbers)
    started = time.monotonic()

    async def worker() -> None:
        for number in queue:
            await lifecycle(env, number)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return len(numbers) / (time.monotonic() - started)


def figures(env: Lab) -> dict[str, ProcessFigures]:
    return {"controller": process_figures(env.controller.pid),
            "node": process_figures(env.node.pid)}


@pytest.mark.asyncio
@pytest.mark.timeout(400)
async def test_1000_lifecycles_leak_nothing(tmp_path: Path, moto: MotoEndpoint,
                                            efs_proxy: EfsProxy) -> None:
    require_root()
    async with lab(tmp_path, moto, efs_proxy) as env:
        warm_rate = await run(env, range(WARM_UP))
        after_warm_up = figures(env)
        assert mounts_under(env.work) == []
        rest_rate = await run(env, range(WARM_UP, LIFECYCLES))
        at_end = figures(env)

        leftover_mounts = mounts_under(env.work)
        leftover_points = await asyncio.to_thread(env.access_points)
        leftover_dirs = [path for path in (env.kubelet / "pods").rglob("mount")]
        print(f"\nsoak: {LIFECYCLES} lifecycles, concurrency {CONCURRENCY}: "
              f"{warm_rate:.1f}/s for the first {WARM_UP}, {rest_rate:.1f}/s for the rest; "
              f"EFS calls {dict(efs_proxy.calls)}")
        for kind in at_end:
            before, after = after_warm_up[kind], at_end[kind]
            print(f"  {kind:<10} after {WARM_UP}: {before}   after {LIFECYCLES}: {after}   "
                  f"RSS {100 * (after.rss_kib / before.rss_kib - 1):+.1f}%")
        print(f"  left behind: {len(leftover_mounts)} mounts, {len(leftover_points)} access "
              f"points, {len(leftover_dirs)} target directories")

        assert leftover_mounts == []
        assert leftover_points == []
        assert leftover_dirs == []
        for kind in at_end:
            before, after = after_warm_up[kind], at_end[kind]
            assert after.fds <= before.fds + FD_SLACK, f"{kind} leaks file descriptors"
            assert after.threads <= before.threads + THREAD_SLACK, f"{kind} leaks threads"
            assert abs(after.rss_kib - before.rss_kib) <= 0.2 * before.rss_kib, \
                f"{kind} RSS moved more than 20%"
