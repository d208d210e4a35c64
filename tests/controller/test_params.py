"""StorageClass parameters: every key, good and bad, as a table."""

from __future__ import annotations

import pytest

from efs_csi.errors import InvalidArgument
from efs_csi_controller.params import GidRange, ObjectKeyRef, parse_parameters

BASE = {"provisioningMode": "efs-ap", "fileSystemId": "fs-12345678", "directoryPerms": "700"}


def test_minimal_parameters_take_documented_defaults() -> None:
    params = parse_parameters(BASE)
    assert params.file_system.file_system_id == "fs-12345678"
    assert params.gid_range == GidRange(50000, 7000000)
    assert params.ensure_unique_directory is True
    assert params.enable_tagging is True
    assert params.reuse_access_point is False
    assert params.sub_path_pattern == "${.PV.name}"
    assert (params.uid, params.gid) == (None, None)


@pytest.mark.parametrize(("extra", "attribute", "expected"), [
    ({"uid": "1000", "gid": "2000"}, "uid", 1000),
    ({"gid": "0"}, "gid", 0),
    ({"gidRangeStart": "100", "gidRangeEnd": "200"}, "gid_range", GidRange(100, 200)),
    ({"basePath": "/dynamic"}, "base_path", "/dynamic"),
    ({"ensureUniqueDirectory": "FALSE"}, "ensure_unique_directory", False),
    ({"reuseAccessPoint": "true"}, "reuse_access_point", True),
    ({"reuseAccessPoint": "1"}, "reuse_access_point", True),
    ({"enableTagging": "F"}, "enable_tagging", False),
    ({"enforceZoneAffinity": "t"}, "enforce_zone_affinity", True),
    ({"enforceZoneAffinity": "true"}, "enforce_zone_affinity", True),
    ({"enableTagging": "false"}, "enable_tagging", False),
    ({"az": "us-east-1a"}, "az", "us-east-1a"),
    ({"directoryPerms": "0755"}, "directory_perms", "0755"),
    ({"csi.storage.k8s.io/provisioner-secret-name": "x"}, "az", None),
])
def test_valid_values(extra: dict[str, str], attribute: str, expected: object) -> None:
    assert getattr(parse_parameters({**BASE, **extra}), attribute) == expected


def test_file_system_refs() -> None:
    without_id = {k: v for k, v in BASE.items() if k != "fileSystemId"}
    config = parse_parameters({**without_id, "fileSystemIdConfigRef": "kube-system/efs/id"})
    assert config.file_system.config_map == ObjectKeyRef("kube-system", "efs", "id")
    secret = parse_parameters({**without_id, "fileSystemIdSecretRef": "ns/s/k"})
    assert secret.file_system.secret == ObjectKeyRef("ns", "s", "k")


@pytest.mark.parametrize(("change", "named"), [
    ({"provisioningMode": "efs-fs"}, "provisioningMode"),
    ({"provisioningMode": None}, "provisioningMode"),
    ({"fileSystemId": "fs-XYZ"}, "fileSystemId"),
    ({"fileSystemId": "fs-12345678,tls"}, "fileSystemId"),
    ({"fileSystemId": None}, "exactly one of fileSystemId"),
    ({"fileSystemIdConfigRef": "a/b/c"}, "exactly one of"),
    ({"fileSystemId": None, "fileSystemIdSecretRef": "a/b"}, "fileSystemIdSecretRef"),
    ({"fileSystemId": None, "fileSystemIdConfigRef": "a/../b/c"}, "fileSystemIdConfigRef"),
    ({"directoryPerms": "800"}, "directoryPerms"),
    ({"directoryPerms": "77"}, "directoryPerms"),
    ({"directoryPerms": None}, "directoryPerms"),
    ({"uid": "-1"}, "uid"),
    ({"uid": "abc"}, "uid"),
    ({"gid": str(2**32)}, "gid"),
    ({"gidRangeStart": "100"}, "gidRangeStart and gidRangeEnd"),
    ({"gidRangeEnd": "100"}, "gidRangeStart and gidRangeEnd"),
    ({"gidRangeStart": "0", "gidRangeEnd": "100"}, "gidRangeStart"),
    ({"gidRangeStart": "200", "gidRangeEnd": "200"}, "gidRangeEnd=200"),
    ({"ensureUniqueDirectory": "yes"}, "ensureUniqueDirectory"),
    ({"reuseAccessPoint": "2"}, "reuseAccessPoint"),
    ({"enableTagging": ""}, "enableTagging"),
    ({"enforceZoneAffinity": "maybe"}, "enforceZoneAffinity"),
    ({"fileSystemID": "fs-12345678"}, "unknown parameter(s) fileSystemID"),
])
def test_invalid_values_name_the_parameter(change: dict[str, str | None], named: str) -> None:
    parameters = {**BASE, **change}
    cleaned = {k: v for k, v in parameters.items() if v is not None}
    with pytest.raises(InvalidArgument) as raised:
        parse_parameters(cleaned)
    assert named in raised.value.message


def test_unknown_key_lists_known_keys() -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_parameters({**BASE, "colour": "blue"})
    assert "colour" in raised.value.message
    assert "subPathPattern" in raised.value.message
    assert "csi.storage.k8s.io/*" in raised.value.message
