"""Dynamic provisioning through a real API server: csi-provisioner (the chart's arguments, the
chart's ServiceAccount) calls efs-csi-controller, which creates access points in moto."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.cluster.conftest import (
    Driver,
    claim,
    events,
    forbidden_since,
    handle_parts,
    namespace,
    phase,
    storage_class,
    timed,
    wait_bound,
    wait_gone,
)
from tests.support.cluster import wait_until

GID_RANGE = (50000, 50999)


def efs_ap_class(name: str, fs_id: str, **parameters: str) -> dict[str, object]:
    return storage_class(name, {
        "provisioningMode": "efs-ap", "fileSystemId": fs_id, "directoryPerms": "750",
        "gidRangeStart": str(GID_RANGE[0]), "gidRangeEnd": str(GID_RANGE[1]),
        "basePath": "/dynamic", "subPathPattern": "${.PVC.namespace}/${.PVC.name}",
        **parameters})


def test_a_claim_binds_to_a_new_access_point_and_deleting_it_removes_both(
        driver: Driver, report: Callable[[str], None]) -> None:
    plane, efs = driver.plane, driver.efs
    mark = len(plane.audit_events())
    fs_id = driver.new_file_system()
    plane.apply([efs_ap_class("efs-ap", fs_id)])
    ns = namespace(plane, "app")

    bind_s = timed(lambda: (plane.apply([claim("claim-1", ns, "efs-ap")]),
                            wait_bound(plane, "claim-1", ns)))
    pv = plane.get("pv", plane.get("pvc", "claim-1", ns)["spec"]["volumeName"])
    fs_part, path_part, ap_id = handle_parts(pv)
    assert (fs_part, path_part) == (fs_id, "")
    assert re.fullmatch(r"fsap-[0-9a-f]+", ap_id), pv["spec"]["csi"]["volumeHandle"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    access_point = efs.access_point(ap_id)
    assert access_point is not None
    root = access_point["RootDirectory"]
    assert re.fullmatch(r"/dynamic/app/claim-1(-[0-9a-f]+)?", root["Path"]), root["Path"]
    assert root["CreationInfo"]["Permissions"] == "750"
    gid = access_point["PosixUser"]["Gid"]
    assert GID_RANGE[0] <= gid <= GID_RANGE[1]
    assert root["CreationInfo"]["OwnerGid"] == gid

    delete_s = timed(lambda: (plane.kubectl("-n", ns, "delete", "pvc", "claim-1"),
                              wait_gone(plane, "pv", pv["metadata"]["name"])))
    wait_until("the access point deleted", lambda: efs.access_point(ap_id) is None, 30)
    assert forbidden_since(plane, mark) == []
    report(f"cluster: PVC created -> Bound {bind_s:.2f} s; PVC deleted -> PV and access point "
           f"gone {delete_s:.2f} s")


def test_twenty_claims_at_once_all_bind_with_distinct_gids(
        driver: Driver, report: Callable[[str], None]) -> None:
    plane, efs = driver.plane, driver.efs
    mark = len(plane.audit_events())
    fs_id = driver.new_file_system()
    plane.apply([efs_ap_class("efs-ap-burst", fs_id)])
    ns = namespace(plane, "burst")
    names = [f"claim-{index:02d}" for index in range(20)]

    def all_bound() -> bool:
        listed = plane.get("pvc", namespace=ns)["items"]
        return sum(item["status"].get("phase") == "Bound" for item in listed) == len(names)

    bind_s = timed(lambda: (plane.apply([claim(name, ns, "efs-ap-burst") for name in names]),
                            wait_until("20 claims Bound", all_bound, 120, interval=0.2,
                                       diagnose=lambda: events(plane, ns))))
    access_points = efs.access_points(fs_id)
    gids = [ap["PosixUser"]["Gid"] for ap in access_points]
    assert len(access_points) == 20
    assert len(set(gids)) == 20, sorted(gids)
    assert all(GID_RANGE[0] <= gid <= GID_RANGE[1] for gid in gids)

    plane.kubectl("-n", ns, "delete", "pvc", "--all", "--wait=true")
    wait_until("every access point deleted", lambda: efs.access_points(fs_id) == [], 120,
               interval=0.2)
    assert forbidden_since(plane, mark) == []
    report(f"cluster: 20 PVCs created at once -> all Bound in {bind_s:.2f} s, "
           f"{len(set(gids))} distinct GIDs")


def test_one_zone_file_system_with_zone_affinity_gives_the_volume_node_affinity(
        driver: Driver) -> None:
    plane = driver.plane
    fs_id = driver.new_file_system(one_zone="us-east-1b")
    plane.apply([efs_ap_class("efs-ap-one-zone", fs_id, enforceZoneAffinity="true")])
    ns = namespace(plane, "zonal")
    plane.apply([claim("claim-z", ns, "efs-ap-one-zone")])
    pv = plane.get("pv", wait_bound(plane, "claim-z", ns)["spec"]["volumeName"])
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "topology.kubernetes.io/zone",
                                            "operator": "In", "values": ["us-east-1b"]}]}]
    plane.kubectl("-n", ns, "delete", "pvc", "claim-z")
    wait_gone(plane, "pv", pv["metadata"]["name"])


def test_file_system_id_from_a_config_map_or_secret_needs_the_charts_reference_list(
        driver: Driver) -> None:
    plane = driver.plane
    fs_id = driver.new_file_system()
    ns = namespace(plane, "refs")
    plane.apply([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "efs", "namespace": ns},
         "data": {"fsid": fs_id}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "efs", "namespace": ns},
         "stringData": {"fsid": fs_id}},
        efs_ap_class("efs-cm", "", fileSystemIdConfigRef=f"{ns}/efs/fsid"),
        efs_ap_class("efs-secret", "", fileSystemIdSecretRef=f"{ns}/efs/fsid"),
    ])

    # Chart defaults: no access to ConfigMaps; the user is told which value to set.
    mark = len(plane.audit_events())
    plane.apply([claim("by-config-map", ns, "efs-cm")])
    wait_until("a ProvisioningFailed event naming the fix",
               lambda: "controller.fileSystemIdReferences" in events(plane, ns), 60,
               diagnose=lambda: events(plane, ns))
    assert phase(plane, "pvc", "by-config-map", ns) == "Pending"
    refused = forbidden_since(plane, mark)
    assert refused and all(" get configmaps refs/efs" in line for line in refused), refused
    plane.kubectl("-n", ns, "delete", "pvc", "by-config-map")

    driver.reinstall(["controller.fileSystemIdReferences[0].kind=ConfigMap",
                      f"controller.fileSystemIdReferences[0].namespace={ns}",
                      "controller.fileSystemIdReferences[0].name=efs",
                      "controller.fileSystemIdReferences[1].kind=Secret",
                      f"controller.fileSystemIdReferences[1].namespace={ns}",
                      "controller.fileSystemIdReferences[1].name=efs"])
    try:
        mark = len(plane.audit_events())
        plane.apply([claim("by-config-map-2", ns, "efs-cm"),
                     claim("by-secret", ns, "efs-secret")])
        for name in ("by-config-map-2", "by-secret"):
            pv = plane.get("pv", wait_bound(plane, name, ns)["spec"]["volumeName"])
            assert handle_parts(pv)[0] == fs_id
        assert forbidden_since(plane, mark) == []
        plane.kubectl("-n", ns, "delete", "pvc", "--all", "--wait=true")
        wait_until("both access points deleted",
                   lambda: driver.efs.access_points(fs_id) == [], 60)
    finally:
        driver.reinstall()
