"""The plan of a create (pure, no I/O): what ``plan_create`` decides from the request and the
StorageClass parameters, and how ``mismatch`` and ``no_proof`` judge an access point found."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from efs_csi.cloud import AccessPoint, CreationInfo, PosixUser
from efs_csi.errors import InvalidArgument
from efs_csi_controller.plan import (
    MAX_YIELDS,
    Plan,
    client_token,
    mismatch,
    no_proof,
    plan_create,
)

FS = "fs-12345678"
PARAMS = {"provisioningMode": "efs-ap", "fileSystemId": FS, "directoryPerms": "700",
          "gidRangeStart": "1000", "gidRangeEnd": "2000", "basePath": "/dyn",
          "csi.storage.k8s.io/pvc/name": "data", "csi.storage.k8s.io/pvc/namespace": "team"}
GIB = 1 << 30


def plan(name: str = "pv-1", capacity: int = GIB, extra_tags: dict[str, str] | None = None,
         **params: str) -> Plan:
    return plan_create(name, capacity, {**PARAMS, **params}, extra_tags=extra_tags or {},
                       cluster_id="cluster-a")


def found(gid: int = 1500, uid: int | None = None, root: str = "", perms: str = "700",
          tags: dict[str, str] | None = None) -> AccessPoint:
    return AccessPoint(access_point_id="fsap-1", file_system_id=FS, root_path=root,
                       posix_user=PosixUser(gid if uid is None else uid, gid),
                       creation_info=CreationInfo(gid, gid, perms), client_token="pv-1",
                       tags=tags or {})


def test_the_plan_carries_the_name_capacity_root_tokens_and_tags() -> None:
    made = plan(extra_tags={"team": "storage"})
    assert (made.name, made.capacity_bytes) == ("pv-1", GIB)
    # The volume name stands in for the PV name the provisioner did not pass.
    assert made.params.metadata.pv_name == "pv-1"
    assert made.root_path.startswith("/dyn/pv-1-")
    assert made.tokens[0] == "pv-1" and len(made.tokens) == MAX_YIELDS + 1
    assert made.tokens[2] == client_token("pv-1", 2) != made.tokens[1]
    assert made.tags["kubernetes.io/created-for/pv/name"] == "pv-1"
    assert made.tags["efs.csi.aws.com/capacity-bytes"] == str(GIB)
    assert made.tags["efs.csi.aws.com/cluster"] == "cluster-a"
    assert made.tags["team"] == "storage"
    assert made.reference_token is None and made.what == "volume 'pv-1'"


def test_a_passed_pv_name_wins_and_long_names_are_hashed() -> None:
    made = plan(name="p" * 100, **{"csi.storage.k8s.io/pv/name": "pv-given"})
    assert made.params.metadata.pv_name == "pv-given"
    assert made.tokens[0] == hashlib.sha256(("p" * 100).encode()).hexdigest()


def test_reuse_keys_the_tokens_by_namespace_and_names_the_reference_token() -> None:
    made = plan(reuseAccessPoint="true")
    assert made.tokens[0] == "team/data"
    assert made.reference_token == hashlib.sha256(b"data").hexdigest()
    assert made.what == "access point for this PVC"


@pytest.mark.parametrize(("params", "named"), [
    ({"reuseAccessPoint": "true", "csi.storage.k8s.io/pvc/name": ""}, "reuseAccessPoint"),
    ({"subPathPattern": "${.PVC.uid}"}, "subPathPattern"),
    ({"directoryPerms": "999"}, "directoryPerms"),
    ({"enableTagging": "false"}, "enableTagging"),  # conflicts with the extra tags
])
def test_a_bad_request_is_refused_naming_the_parameter(params: dict[str, str],
                                                       named: str) -> None:
    with pytest.raises(InvalidArgument, match=named):
        plan(extra_tags={"team": "storage"}, **params)


@pytest.mark.parametrize(("existing", "capacity", "problem"), [
    (found(root="ROOT"), None, None),
    (found(gid=3000, root="ROOT"), None, "outside 1000-2000"),
    (found(uid=7, root="ROOT"), None, "uid is 7"),
    (found(root="/other"), None, "path is /other"),
    (found(root="ROOT", perms="755"), None, "permissions 755"),
    (found(root="ROOT"), 5, "capacity 5 bytes"),  # remembered (tagging disabled)
    (found(root="ROOT", tags={"efs.csi.aws.com/capacity-bytes": "7"}), GIB, "capacity 7"),
    (found(root="ROOT", tags={"efs.csi.aws.com/capacity-bytes": str(GIB)}), 5, None),
])
def test_mismatch_names_what_differs(existing: AccessPoint, capacity: int | None,
                                     problem: str | None) -> None:
    made = plan()
    if existing.root_path == "ROOT":
        existing = replace(existing, root_path=made.root_path)  # the plan's own root
    found_problem = mismatch(existing, made, capacity)
    assert (found_problem is None) if problem is None else (problem in (found_problem or ""))


@pytest.mark.parametrize(("tags", "params", "proven"), [
    ({"kubernetes.io/created-for/pv/name": "pv-1"}, {}, True),  # its PV-name tag
    ({}, {"referenceAccessPointsNamespace": "team"}, True),  # the class names the namespace
    ({}, {"referenceAccessPointsNamespace": "other"}, False),
    ({}, {}, False),
    ({"kubernetes.io/created-for/pvc/namespace": "other",
      "kubernetes.io/created-for/pv/name": "pv-1"}, {}, False),  # another namespace's
])
def test_the_reference_drivers_access_point_needs_proof(
        tags: dict[str, str], params: dict[str, str], proven: bool) -> None:
    made = plan(reuseAccessPoint="true", **params)
    assert (no_proof(found(tags=tags, root="/dyn/x"), made) is None) is proven
