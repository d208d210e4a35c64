"""Two namespaces never share a root directory unless the operator allows it (review #8).

The pure rule on a table, then CreateVolume through the real service and the aiobotocore
adapter against moto (behind the EFS proxy), as the review's run E3b did it: two PVCs named
``db`` in two namespaces, ``subPathPattern: ${.PVC.name}``, ``ensureUniqueDirectory: false``.
The cluster suite shows the same through csi-provisioner and a PVC's events
(tests/cluster/test_security.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from grpclib.const import Status

from efs_csi import csi
from efs_csi.adapters.aws.roles import CloudFactory
from efs_csi.cloud import AccessPoint
from efs_csi.errors import CsiError
from efs_csi_controller.app import build_controller
from efs_csi_controller.shared_roots import (
    conflicting_access_point,
    normalise,
    overlap,
    overlaps_with,
)
from efs_csi_controller.tags import CLUSTER_TAG, PVC_NAMESPACE_TAG
from testbed.efs_proxy import EfsProxy, make_file_system
from testbed.moto_server import CREDENTIALS, REGION, MotoEndpoint

Mode = csi.VolumeCapabilityAccessModeMode
FS = "fs-12345678"


def made(root: str, namespace: str | None = "tenant-a", *, by_driver: bool = True,
         state: str = "available", token: str = "t") -> AccessPoint:
    tags = {CLUSTER_TAG: "c1"} if by_driver else {}
    if namespace is not None:
        tags[PVC_NAMESPACE_TAG] = namespace
    return AccessPoint(access_point_id="fsap-0000aaaa", file_system_id=FS, root_path=root,
                       client_token=token, tags=tags, life_cycle_state=state)


@pytest.mark.parametrize(("new_root", "namespace", "other", "conflicts"), [
    ("/db", "tenant-b", made("/db"), True),                      # equal
    ("/db/", "tenant-b", made("//db"), True),                    # equal, spelled otherwise
    ("/data", "tenant-b", made("/data/db"), True),               # contains
    ("/data/db/x", "tenant-b", made("/data/db"), True),          # lies in
    ("/db", "tenant-a", made("/db"), False),                     # same namespace
    ("/db", None, made("/db"), True),                            # namespace unknown
    ("/db", "tenant-b", made("/db", namespace=None), True),      # theirs unknown
    ("/db2", "tenant-b", made("/db"), False),                    # a prefix is not a parent
    ("/", "tenant-b", made("/db"), True),                        # the root holds everything
    ("/db", "tenant-b", made("//"), True),                       # ... spelled otherwise
    ("/a/db", "tenant-b", made("/a/db2/x"), False),              # siblings
    ("/db", "tenant-b", made("/db", by_driver=False), False),    # made by hand
    ("/db", "tenant-b", made("/db", state="deleting"), False),   # going away
    ("/db", "tenant-b", made("/db", token="mine"), False),       # this volume's own (retry)
])
def test_overlap_rule(new_root: str, namespace: str | None, other: AccessPoint,
                      conflicts: bool) -> None:
    found = conflicting_access_point(new_root, namespace, [other], own_tokens=("mine",))
    assert (found is other) is conflicts


@pytest.mark.parametrize("one", ["/", "//", "/a", "/a/", "/a/b", "/a/bc", "/ab", "/a/b/c",
                                 "/a//b/"])
@pytest.mark.parametrize("other", ["/", "/a", "/a/b", "/a/bc", "/ab", "/a/b/c", "/b"])
def test_the_fast_overlap_test_agrees_with_the_path_one(one: str, other: str) -> None:
    assert overlaps_with(one)(other) == overlap(normalise(one), normalise(other))


@pytest.fixture
def proxy(moto: MotoEndpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[EfsProxy]:
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with EfsProxy(moto.url) as running:
        yield running


def request(name: str, namespace: str, fs_id: str, pvc: str = "db") -> csi.CreateVolumeRequest:
    return csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[csi.VolumeCapability(
            mount=csi.VolumeCapabilityMountVolume(),
            access_mode=csi.VolumeCapabilityAccessMode(mode=Mode.MULTI_NODE_MULTI_WRITER))],
        parameters={"provisioningMode": "efs-ap", "fileSystemId": fs_id, "directoryPerms": "777",
                    "subPathPattern": "${.PVC.name}", "ensureUniqueDirectory": "false",
                    "csi.storage.k8s.io/pvc/name": pvc,
                    "csi.storage.k8s.io/pvc/namespace": namespace,
                    "csi.storage.k8s.io/pv/name": name})


@pytest.mark.asyncio
@pytest.mark.parametrize("at_once", [False, True], ids=["one-after-the-other", "at-once"])
async def test_a_second_namespace_cannot_get_the_same_directory(proxy: EfsProxy,
                                                                at_once: bool) -> None:
    fs_id = make_file_system(proxy.url).file_system_id
    async with CloudFactory(REGION, endpoint_url=proxy.url, adaptive_retry=False) as clouds:
        service = build_controller(clouds, access_point_limit=100,
                                   extra_tags={}, cluster_id="c1").service
        first, second = request("pv-a", "tenant-a", fs_id), request("pv-b", "tenant-b", fs_id)
        if at_once:
            results = await asyncio.gather(service.create_volume(first),
                                           service.create_volume(second),
                                           return_exceptions=True)
        else:
            results = [await service.create_volume(first)]
            try:
                results.append(await service.create_volume(second))
            except CsiError as exc:
                results.append(exc)
        refused = [r for r in results if isinstance(r, CsiError)]
        assert len(refused) == 1, results
        assert refused[0].status == Status.FAILED_PRECONDITION
        message = refused[0].message
        assert "/db" in message and "--allow-shared-root-directories" in message
        assert "controller.allowSharedRootDirectories" in message
        assert "tenant-a" not in message and "tenant-b" not in message  # no other tenant named
        # A claim of the same namespace may share (as reuse within a namespace always could),
        # and a retried create of the one that won answers with its access point.
        winner = next(r for r in results if isinstance(r, csi.CreateVolumeResponse))
        assert winner.volume is not None
        won_by_a = not isinstance(results[0], CsiError)
        same_ns = "tenant-a" if won_by_a else "tenant-b"
        again = await service.create_volume(first if won_by_a else second)
        assert again.volume is not None and again.volume.volume_id == winner.volume.volume_id
        also = await service.create_volume(request("pv-c", same_ns, fs_id))
        assert also.volume is not None
        assert len([ap async for ap in clouds.default.access_points(fs_id)]) == 2


@pytest.mark.asyncio
async def test_the_operator_may_allow_sharing(proxy: EfsProxy) -> None:
    fs_id = make_file_system(proxy.url).file_system_id
    async with CloudFactory(REGION, endpoint_url=proxy.url, adaptive_retry=False) as clouds:
        service = build_controller(clouds, access_point_limit=100,
                                   extra_tags={}, cluster_id="c1",
                                   allow_shared_roots=True).service
        for name, namespace in (("pv-a", "tenant-a"), ("pv-b", "tenant-b")):
            created = await service.create_volume(request(name, namespace, fs_id))
            assert created.volume is not None
        roots = {ap.root_path async for ap in clouds.default.access_points(fs_id)}
        assert roots == {"/db"}


@pytest.mark.asyncio
async def test_another_controllers_directory_made_after_this_one_listed_is_never_shared(
        proxy: EfsProxy) -> None:
    """Two controllers (two processes' worth of state) on one file system: B listed it just
    before A made tenant-a's ``db``, so what B knows is fresh yet misses it. B's create for
    tenant-b's ``db`` is checked again against the listing that settles its GID (made after
    the create), gives its access point up and is FAILED_PRECONDITION; nothing is left."""
    fs_id = make_file_system(proxy.url).file_system_id
    async with CloudFactory(REGION, endpoint_url=proxy.url, adaptive_retry=False) as clouds:
        a, b = (build_controller(clouds, access_point_limit=100,
                                 extra_tags={}, cluster_id="c1").service for _ in range(2))
        warm = await b.create_volume(request("pv-warm", "tenant-b", fs_id, pvc="warm"))
        assert warm.volume is not None  # B has listed the file system (to settle its GID)
        mine = await a.create_volume(request("pv-a", "tenant-a", fs_id))
        assert mine.volume is not None
        with pytest.raises(CsiError) as refused:
            await b.create_volume(request("pv-b", "tenant-b", fs_id))
        assert refused.value.status == Status.FAILED_PRECONDITION
        assert "/db" in refused.value.message and "--allow-shared-root-directories" in \
            refused.value.message
        left = {(ap.root_path, ap.tags.get(PVC_NAMESPACE_TAG))
                async for ap in clouds.default.access_points(fs_id)}
        assert left == {("/warm", "tenant-b"), ("/db", "tenant-a")}
