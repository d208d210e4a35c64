"""Throttling storm: 200 concurrent CreateVolume while EFS throttles 30% of calls.

The real controller binary talks to moto through the EfsProxy, which answers 30% of all EFS
calls with ThrottlingException and delays every call by a random 0-50 ms, so the driver's
adapter's own per-API retries do the work, in the default (adaptive) mode: throttles that
do not follow the request rate never engage its client-side rate limiter (botocore's adaptive
mode, used before, fell to ~1.5 creates/s here), see bench/controller_provisioning.py.
Checked from outside (DescribeAccessPoints straight to moto): every volume exists with its own
access point, all GIDs are distinct, and after 200 concurrent deletes nothing is left.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from efs_csi import csi
from testbed.efs_proxy import EfsProxy
from testbed.moto_server import MotoEndpoint
from tests.reliability.support import GID_END, GID_START, create_request, lab, with_retries

VOLUMES = 200


@pytest.mark.asyncio
@pytest.mark.timeout(300)
async def test_200_concurrent_creates_and_deletes_under_30_percent_throttling(
        tmp_path: Path, moto: MotoEndpoint, efs_proxy: EfsProxy) -> None:
    async with lab(tmp_path, moto, efs_proxy) as env:
        names = [f"pvc-storm-{number:04d}" for number in range(VOLUMES)]
        efs_proxy.reset_counts()
        efs_proxy.inject(throttle=0.30, latency=(0.0, 0.05))
        retried: Counter[str] = Counter()

        async def create(name: str) -> str:
            reply = await with_retries(
                lambda: env.controller.controller().create_volume(
                    create_request(name, env.file_system_id), timeout=120),
                counter=retried)
            assert reply.volume is not None
            return reply.volume.volume_id

        started = time.monotonic()
        volume_ids = await asyncio.gather(*(create(name) for name in names))
        create_seconds = time.monotonic() - started
        create_calls, create_faults = efs_proxy.calls, efs_proxy.injected

        points = await asyncio.to_thread(env.access_points)
        assert len(points) == VOLUMES
        assert len(set(volume_ids)) == VOLUMES
        by_id = {point["AccessPointId"]: point for point in points}
        assert {volume_id.rsplit(":", 1)[1] for volume_id in volume_ids} == set(by_id)
        assert {point["ClientToken"] for point in points} == set(names)
        gids = [point["PosixUser"]["Gid"] for point in points]
        assert len(set(gids)) == VOLUMES, "two access points share a GID"
        assert all(GID_START <= gid <= GID_END for gid in gids)

        efs_proxy.reset_counts()
        started = time.monotonic()
        await asyncio.gather(*(with_retries(
            lambda volume_id=volume_id: env.controller.controller().delete_volume(
                csi.DeleteVolumeRequest(volume_id=volume_id), timeout=120),
            counter=retried) for volume_id in volume_ids))
        delete_seconds = time.monotonic() - started
        delete_calls, delete_faults = efs_proxy.calls, efs_proxy.injected
        efs_proxy.clear_faults()

        assert await asyncio.to_thread(env.access_points) == []
        print(f"\nthrottling storm: {VOLUMES} creates in {create_seconds:.1f} s "
              f"({VOLUMES / create_seconds:.1f}/s), deletes in {delete_seconds:.1f} s "
              f"({VOLUMES / delete_seconds:.1f}/s); client-level retries {dict(retried)}")
        print(f"  create phase: calls {dict(create_calls)} injected {dict(create_faults)}")
        print(f"  delete phase: calls {dict(delete_calls)} injected {dict(delete_faults)}")
        print(f"  distinct GIDs {len(set(gids))}, range {min(gids)}..{max(gids)}")
