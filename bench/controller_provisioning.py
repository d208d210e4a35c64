"""Controller provisioning under load: N concurrent CreateVolume calls on one file system that
already holds M access points, then the N DeleteVolume calls, through the real Controller
service, the real aiobotocore adapter and moto's EFS over HTTP behind the EFS proxy (which
counts the API calls and can inject throttling).

    python bench/controller_provisioning.py [--quick]

Prints, per (N, M, throttling): creates per second, p50/p99 create latency, EFS API calls per
create (counted at the proxy, the one-time listing included), distinct GIDs, failed creates and
access points left behind; writes ``bench/results/controller_provisioning.json``. The reference
driver lists every access point on each create: 1 + ceil(M/1000) calls per create.
Targets: GIDs all distinct, nothing left behind, <= 1.1 calls per create at M = 5000, and
every create succeeding at 20 % injected throttling.

moto runs in this process (a thread), so the figures include moto's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402

from efs_csi import csi  # noqa: E402
from efs_csi.adapters.aws import CloudFactory  # noqa: E402
from efs_csi.logging import configure_logging  # noqa: E402
from efs_csi_controller.app import build_controller  # noqa: E402
from testbed.csi_builders import percentile  # noqa: E402
from testbed.efs_proxy import EfsProxy, make_file_system  # noqa: E402
from testbed.moto_server import CREDENTIALS, REGION, running_moto  # noqa: E402

Mode = csi.VolumeCapabilityAccessModeMode


def efs_client(url: str) -> Any:
    return boto3.client("efs", region_name=REGION, endpoint_url=url,
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def prepopulate(moto_url: str, file_system_id: str, count: int) -> None:
    """M existing access points with GIDs spread over the default range (made behind the
    controller's back, straight into moto)."""
    client = efs_client(moto_url)

    def one(index: int) -> None:
        gid = 50000 + index * 2  # every other GID: the allocator has to find the gaps
        client.create_access_point(
            ClientToken=f"existing-{index}", FileSystemId=file_system_id,
            PosixUser={"Uid": gid, "Gid": gid},
            RootDirectory={"Path": f"/existing/{index}", "CreationInfo": {
                "OwnerUid": gid, "OwnerGid": gid, "Permissions": "700"}})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def request(name: str, file_system_id: str) -> csi.CreateVolumeRequest:
    return csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[csi.VolumeCapability(
            mount=csi.VolumeCapabilityMountVolume(),
            access_mode=csi.VolumeCapabilityAccessMode(mode=Mode.MULTI_NODE_MULTI_WRITER))],
        parameters={"provisioningMode": "efs-ap", "fileSystemId": file_system_id,
                    "directoryPerms": "700", "basePath": "/bench"})



async def scenario(moto_url: str, proxy: EfsProxy, creates: int, existing: int,
                   throttle: float, adaptive: bool) -> dict[str, Any]:
    file_system_id = make_file_system(moto_url).file_system_id
    prepopulate(moto_url, file_system_id, existing)
    proxy.clear_faults()
    proxy.reset_counts()
    if throttle:
        proxy.inject(throttle=throttle)
    async with CloudFactory(REGION, endpoint_url=proxy.url, adaptive_retry=adaptive) as clouds:
        parts = build_controller(clouds.default, for_role=clouds.cloud_for,
                                 access_point_limit=10000, extra_tags={})
        service = parts.service
        latencies: list[float] = []

        async def create(index: int) -> str | None:
            started = time.perf_counter()
            try:
                reply = await service.create_volume(request(f"pvc-bench-{index}",
                                                            file_system_id))
            except Exception as exc:  # counted as a failure, shown in the table
                print(f"  create {index} failed: {exc}", file=sys.stderr)
                return None
            latencies.append(time.perf_counter() - started)
            return reply.volume.volume_id if reply.volume else None

        started = time.perf_counter()
        volume_ids = await asyncio.gather(*(create(i) for i in range(creates)))
        create_seconds = time.perf_counter() - started
        create_calls = proxy.efs_calls()
        gids = [ap.posix_user.gid for ap in await parts.allocator.known(clouds.default,
                                                                        file_system_id)
                if ap.posix_user is not None and ap.root_path.startswith("/bench")]
        proxy.clear_faults()
        created = [volume_id for volume_id in volume_ids if volume_id]
        await asyncio.gather(*(service.delete_volume(csi.DeleteVolumeRequest(volume_id=v))
                               for v in created))
    listing = efs_client(moto_url).get_paginator("describe_access_points")
    remaining = sum(1 for page in listing.paginate(FileSystemId=file_system_id)
                    for ap in page["AccessPoints"] if ap["RootDirectory"]["Path"]
                    .startswith("/bench"))
    return {
        "creates": creates, "existing_access_points": existing, "throttle": throttle,
        "retry_mode": "adaptive" if adaptive else "standard",
        "creates_per_s": round(creates / create_seconds, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
        "efs_calls_per_create": round(create_calls / creates, 3),
        "reference_calls_per_create": 1 + math.ceil(existing / 1000),
        "distinct_gids": len(set(gids)), "failed_creates": creates - len(created),
        "left_behind": remaining,
        "injected_faults": sum(proxy.injected.values()),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[c]).rjust(w) for c, w in zip(columns, widths, strict=True)))


async def run(quick: bool) -> list[dict[str, Any]]:
    sizes = [50, 200] if quick else [50, 200, 1000]
    existing = [0, 1000] if quick else [0, 1000, 5000]
    # Throttled runs: the default adaptive mode (client-side rate limiting backs off hard)
    # and standard mode (plain retries), for comparison.
    plan = [(n, m, 0.0, True) for m in existing for n in sizes] + [
        (100, existing[-1], 0.2, True), (100, existing[-1], 0.2, False)]
    rows = []
    with running_moto() as moto, EfsProxy(moto.url, seed=7) as proxy:
        for creates, count, throttle, adaptive in plan:
            row = await scenario(moto.url, proxy, creates, count, throttle, adaptive)
            print(f"  N={creates} M={count} throttle={throttle}: {row['creates_per_s']}/s, "
                  f"{row['efs_calls_per_create']} calls/create", flush=True)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N <= 200, M <= 1000")
    args = parser.parse_args()
    os.environ.update({**CREDENTIALS, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"})
    configure_logging("console", "error")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    rows = asyncio.run(run(args.quick))
    print_table(rows)
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "controller_provisioning", "quick": args.quick, "rows": rows}
    (results / "controller_provisioning.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
