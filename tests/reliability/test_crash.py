"""Crash: SIGKILL a binary in the middle of a batch, restart it, let the client retry.

The client behaves like csi-provisioner (controller) and kubelet (node): every request that
did not get an answer (UNAVAILABLE, ABORTED, DEADLINE_EXCEEDED, a dropped connection, or no
process to talk to) is sent again, unchanged, until it succeeds. What must hold afterwards:
each volume name maps to exactly one access point (none leaked, no duplicate GIDs), and each
pod target is mounted exactly once, with nothing left after unpublish/unstage.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from efs_csi import csi
from testbed.efs_proxy import EfsProxy
from testbed.moto_server import MotoEndpoint
from tests.reliability.support import (
    Binary,
    capability,
    create_request,
    lab,
    mount_counts_under,
    mounts_under,
    with_retries,
)
from tests.support.ci import require_root

CALL_TIMEOUT = 10


async def kill_and_restart_when(binary: Binary, time_to_kill: asyncio.Event) -> None:
    """SIGKILL ``binary`` once the event is set, then start a fresh one."""
    await time_to_kill.wait()
    await binary.kill()
    await binary.start()


async def batch(calls: list[Callable[[], Awaitable[object]]], binary: Binary, kill_after: int,
                retried: Counter[str]) -> tuple[int, int]:
    """Run ``calls`` concurrently; SIGKILL after ``kill_after`` answers. (answered, total)."""
    answered = [0]
    time_to_kill = asyncio.Event()

    async def one(call: Callable[[], Awaitable[object]]) -> None:
        await with_retries(call, counter=retried)
        answered[0] += 1
        if answered[0] >= kill_after:
            time_to_kill.set()

    killer = asyncio.create_task(kill_and_restart_when(binary, time_to_kill))
    try:
        await asyncio.gather(*(one(call) for call in calls))
        answered_before_kill = kill_after
        await killer
    finally:
        if not killer.done():
            killer.cancel()
            await asyncio.gather(killer, return_exceptions=True)
    return answered_before_kill, len(calls)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_controller_sigkill_during_creates_leaves_one_access_point_per_volume(
        tmp_path: Path, moto: MotoEndpoint, efs_proxy: EfsProxy) -> None:
    async with lab(tmp_path, moto, efs_proxy) as env:
        # Slow EFS down so that many creates are in flight (some already at EFS) at the kill.
        efs_proxy.inject(latency=(0.05, 0.4), operations=["CreateAccessPoint"])
        names = [f"pvc-crash-{number:03d}" for number in range(80)]
        retried: Counter[str] = Counter()
        volume_ids: dict[str, str] = {}
        first_pid = env.controller.pid

        def create(name: str) -> Callable[[], Awaitable[object]]:
            async def call() -> None:
                reply = await env.controller.controller().create_volume(
                    create_request(name, env.file_system_id), timeout=CALL_TIMEOUT)
                assert reply.volume is not None
                volume_ids[name] = reply.volume.volume_id
            return call

        await batch([create(name) for name in names], env.controller, 20, retried)
        assert env.controller.pid != first_pid, "the controller was not restarted"
        efs_proxy.clear_faults()

        points = await asyncio.to_thread(env.access_points)
        tokens = Counter(point["ClientToken"] for point in points)
        assert sorted(tokens) == sorted(names), "a volume has no access point, or one leaked"
        assert max(tokens.values()) == 1, f"duplicates: {[t for t, n in tokens.items() if n > 1]}"
        by_token = {point["ClientToken"]: point["AccessPointId"] for point in points}
        assert {name: volume_ids[name].rsplit(":", 1)[1] for name in names} == by_token
        gids = [point["PosixUser"]["Gid"] for point in points]
        assert len(set(gids)) == len(gids), "duplicate GIDs after the restart"

        await asyncio.gather(*(with_retries(
            lambda volume_id=volume_id: env.controller.controller().delete_volume(
                csi.DeleteVolumeRequest(volume_id=volume_id), timeout=CALL_TIMEOUT),
            counter=retried) for volume_id in volume_ids.values()))
        assert await asyncio.to_thread(env.access_points) == []
        print(f"\ncontroller crash: {len(names)} creates, SIGKILL after 20 answers, "
              f"client retries {dict(retried)}, {len(points)} access points, "
              f"{len(set(gids))} distinct GIDs, 0 left after delete; "
              f"EFS calls {dict(efs_proxy.calls)}")


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_node_sigkill_during_publishes_mounts_each_target_once(
        tmp_path: Path, moto: MotoEndpoint, efs_proxy: EfsProxy) -> None:
    require_root()
    async with lab(tmp_path, moto, efs_proxy) as env:
        retried: Counter[str] = Counter()
        volumes: dict[str, str] = {}
        for number in range(8):
            name = f"pvc-node-crash-{number}"
            reply = await env.controller.controller().create_volume(
                create_request(name, env.file_system_id))
            assert reply.volume is not None
            volumes[name] = reply.volume.volume_id
        for name, volume_id in volumes.items():
            await env.node.node().node_stage_volume(csi.NodeStageVolumeRequest(
                volume_id=volume_id, staging_target_path=str(env.staging_path(name)),
                volume_capability=capability()))
        targets = [(name, env.target_path(f"pod-{name}-{replica}", name))
                   for name in volumes for replica in range(10)]
        first_pid = env.node.pid

        def publish(name: str, target: Path) -> Callable[[], Awaitable[object]]:
            return lambda: env.node.node().node_publish_volume(csi.NodePublishVolumeRequest(
                volume_id=volumes[name], staging_target_path=str(env.staging_path(name)),
                target_path=str(target), volume_capability=capability()),
                timeout=CALL_TIMEOUT)

        await batch([publish(name, target) for name, target in targets], env.node, 15,
                    retried)
        assert env.node.pid != first_pid, "the node was not restarted"

        counts = mount_counts_under(env.kubelet / "pods")
        assert set(counts) == {str(target) for _, target in targets}
        assert set(counts.values()) == {1}, f"mounted more than once: {counts}"
        staged = mount_counts_under(env.kubelet / "plugins")
        assert set(staged.values()) == {1} and len(staged) == len(volumes)

        # A write through one pod is seen through another (the binds are the real volume).
        first, second = targets[0][1], targets[1][1]
        await asyncio.to_thread((first / "probe.txt").write_text, "survived")
        assert await asyncio.to_thread((second / "probe.txt").read_text) == "survived"

        await asyncio.gather(*(with_retries(
            lambda name=name, target=target: env.node.node().node_unpublish_volume(
                csi.NodeUnpublishVolumeRequest(volume_id=volumes[name],
                                               target_path=str(target)),
                timeout=CALL_TIMEOUT), counter=retried) for name, target in targets))
        for name, volume_id in volumes.items():
            await env.node.node().node_unstage_volume(csi.NodeUnstageVolumeRequest(
                volume_id=volume_id, staging_target_path=str(env.staging_path(name))))
        assert mounts_under(env.work) == [], "orphaned mounts after unpublish/unstage"
        assert not any((env.kubelet / "pods").rglob("mount")), "target directories left"
        for volume_id in volumes.values():
            await env.controller.controller().delete_volume(
                csi.DeleteVolumeRequest(volume_id=volume_id))
        assert await asyncio.to_thread(env.access_points) == []
        print(f"\nnode crash: {len(targets)} publishes, SIGKILL after 15 answers, "
              f"client retries {dict(retried)}, every target mounted once, "
              "0 mounts left after unpublish/unstage")
