"""``reuseAccessPoint``: one access point per PVC (namespace and name), confirmed with EFS before
it is answered; the reference driver's access point for the PVC adopted only with proof (the
proofs themselves: test_reuse_adoption.py)."""

from __future__ import annotations

import hashlib

import pytest
from grpclib.const import Status

from efs_csi.cloud import (
    AccessPointRequest,
    CreationInfo,
    PosixUser,
)
from testbed.fake_cloud import FakeCloud
from tests.support.controller import (
    FS,
    Harness,
    code_of,
    create_request,
)


@pytest.mark.asyncio
async def test_reuse_access_point_by_pvc(harness: Harness) -> None:
    first = await harness.stub.create_volume(create_request(reuseAccessPoint="true"))
    again = await harness.stub.create_volume(create_request(
        name="pv-new", reuseAccessPoint="true", extra={"csi.storage.k8s.io/pv/name": "pv-new"}))
    assert first.volume is not None and again.volume is not None
    assert first.volume.volume_id == again.volume.volume_id
    status, message = await code_of(harness.stub.create_volume(create_request(
        name="pv-other", reuseAccessPoint="true", gidRangeStart="5000", gidRangeEnd="6000")))
    assert status == Status.ALREADY_EXISTS and "outside 5000-6000" in message
    status, message = await code_of(harness.stub.create_volume(create_request(
        name="pv-x", reuseAccessPoint="true", extra={"csi.storage.k8s.io/pvc/name": ""})))
    assert status == Status.INVALID_ARGUMENT and "reuseAccessPoint" in message


REUSE = {"reuseAccessPoint": "true"}


@pytest.mark.asyncio
async def test_reuse_confirms_the_access_point_still_exists(harness: Harness) -> None:
    """Another controller deleted the PVC's access point: a new one is made, never the
    deleted one answered from the inventory."""
    first = await harness.stub.create_volume(create_request(**REUSE))
    assert first.volume is not None
    [gone] = harness.cloud.access_points_by_id
    del harness.cloud.access_points_by_id[gone]  # deleted behind our back
    again = await harness.stub.create_volume(create_request(name="pv-2", **REUSE))
    assert again.volume is not None and not again.volume.volume_id.endswith(gone)
    [made] = harness.cloud.access_points_by_id.values()
    assert again.volume.volume_id.endswith(made.access_point_id)
    assert harness.cloud.calls["CreateAccessPoint"] == 2


def reference_made(cloud: FakeCloud, pvc_name: str, root: str, gid: int = 1500) -> str:
    """An access point as the reference driver makes it for reuseAccessPoint: its client
    token is the SHA-256 of the PVC name alone, and it has no namespace tag."""
    token = hashlib.sha256(pvc_name.encode()).hexdigest()
    return cloud.add_existing(AccessPointRequest(
        FS, token, root, PosixUser(gid, gid), CreationInfo(gid, gid, "700"),
        tags={"efs.csi.aws.com/cluster": "true"})).access_point_id


@pytest.mark.asyncio
async def test_reuse_adopts_the_reference_drivers_access_point_only_with_proof(
        harness: Harness) -> None:
    """Its token names the PVC but not the namespace: without proof (see
    tests/controller/test_reuse_adoption.py for the proofs) this PVC gets its own."""
    legacy = reference_made(harness.cloud, "data", "/dyn/pvc-1234")
    reply = await harness.stub.create_volume(create_request(**REUSE))
    assert reply.volume is not None and legacy not in reply.volume.volume_id
    [made] = [ap for ap in harness.cloud.access_points_by_id.values()
              if ap.access_point_id != legacy]
    assert made.client_token == "team/data" and made.root_path != "/dyn/pvc-1234"


@pytest.mark.asyncio
async def test_reuse_leaves_a_reference_access_point_of_another_storage_class_alone(
        harness: Harness) -> None:
    legacy = reference_made(harness.cloud, "data", "/elsewhere/pvc-1234")  # not in /dyn
    reply = await harness.stub.create_volume(create_request(**REUSE))
    assert reply.volume is not None and legacy not in reply.volume.volume_id
    assert harness.cloud.calls["CreateAccessPoint"] == 1
