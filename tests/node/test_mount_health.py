"""Each staged volume's mount health, checked in the background and exported per volume
(``efs_csi_node_volume_stale``): stale while its current mount does not answer, healthy again
once it is mounted anew, gone once unstaged; a hung check blocks nothing.

The kernel is the fake mount table here and the stat answers like a dead NFS server on chosen
paths (``tests.support.fakes.dead_server``: a bind mount cannot go stale on cue); tests/alerts
makes a real mount stale (a FUSE server killed under a real bind mount) against the real node
binary.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_node.metrics import NodeMetrics
from efs_csi_node.mount_health import MountHealth, VolumeHealth
from testbed.csi_builders import stage_request
from tests.support.fakes.dead_server import DeadServer
from tests.support.fakes.mounts import FakeMountTable
from tests.support.node import fake_parts
from tests.support.scrape import MetricsServer, scrape, value

FS = "fs-0123456789abcdef0"
OTHER_FS = "fs-00000000000000abc"


@pytest.mark.asyncio
async def test_a_stale_volume_is_reported_until_mounted_again_and_forgotten_when_unstaged(
        tmp_path: Path, metrics_server: MetricsServer) -> None:
    registry, port, _ = metrics_server
    table, dead = FakeMountTable(), DeadServer()
    parts = fake_parts(table, dead=dead)
    health = MountHealth(parts.stager.staged, parts.ops.probe, table.read_table, parts.locks)
    NodeMetrics(registry).track_mount_health(health.snapshot)
    sick, well = tmp_path / "sick", tmp_path / "well"
    try:
        async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
            stub = csi.NodeStub(channel)
            await stub.node_stage_volume(stage_request(FS, sick))
            await stub.node_stage_volume(stage_request(f"{OTHER_FS}:/data", well))
            await health.check()
            assert health.snapshot() == [VolumeHealth(FS, FS, False),
                                         VolumeHealth(f"{OTHER_FS}:/data", OTHER_FS, False)]

            dead.stale.add(str(sick))
            await health.check()
            samples = await scrape(port)
            assert value(samples, "efs_csi_node_volume_stale", volume_id=FS,
                         file_system_id=FS) == 1
            assert value(samples, "efs_csi_node_volume_stale", volume_id=f"{OTHER_FS}:/data",
                         file_system_id=OTHER_FS) == 0

            # NodeStage again (kubelet's retry, a new pod) unmounts it lazily and mounts it
            # anew: the old finding is about a mount that is gone.
            dead.stale.discard(str(sick))
            await stub.node_stage_volume(stage_request(FS, sick))  # healthy: left as it is
            assert [v.stale for v in health.snapshot()] == [True, False]
            dead.stale.add(str(sick))
            await stub.node_stage_volume(stage_request(FS, sick))
            dead.stale.discard(str(sick))
            assert [v.stale for v in health.snapshot()] == [False, False]

            await stub.node_unstage_volume(csi.NodeUnstageVolumeRequest(
                volume_id=FS, staging_target_path=str(sick)))
            samples = await scrape(port)
            assert ("efs_csi_node_volume_stale",
                    frozenset({("volume_id", FS), ("file_system_id", FS)})) not in samples
            assert [v.volume_id for v in health.snapshot()] == [f"{OTHER_FS}:/data"]
    finally:
        dead.release.set()


@pytest.mark.asyncio
async def test_a_hung_mount_is_stale_and_does_not_hold_up_the_others(tmp_path: Path) -> None:
    table, dead = FakeMountTable(), DeadServer()
    parts = fake_parts(table, dead=dead)  # the probe's time limit: 0.5 s
    health = MountHealth(parts.stager.staged, parts.ops.probe, table.read_table, parts.locks)
    hung, well = tmp_path / "hung", tmp_path / "well"
    try:
        async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
            stub = csi.NodeStub(channel)
            await stub.node_stage_volume(stage_request(FS, hung))
            await stub.node_stage_volume(stage_request(f"{OTHER_FS}:/data", well))
        dead.hung.add(str(hung))
        await health.check()
        await health.check()  # still hung: answered at once, no second thread on the path
        assert [(v.file_system_id, v.stale) for v in health.snapshot()] == [
            (FS, True), (OTHER_FS, False)]
    finally:
        dead.release.set()
