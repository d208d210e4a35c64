"""Table tests for the node's volume context parsing."""

from __future__ import annotations

import pytest

from efs_csi.contract.volume_context import VolumeContext, parse_volume_context
from efs_csi.errors import InvalidArgument


@pytest.mark.parametrize(("context", "expected"), [
    ({}, VolumeContext()),
    ({"encryptInTransit": "false"}, VolumeContext(encrypt_in_transit=False)),
    ({"encryptintransit": "TRUE"}, VolumeContext(encrypt_in_transit=True)),
    ({"mounttargetip": "10.0.0.5"}, VolumeContext(mount_target_ip="10.0.0.5")),
    ({"mounttargetip": "fd00::1"}, VolumeContext(mount_target_ip="fd00::1")),
    ({"crossaccount": "true"}, VolumeContext(cross_account=True)),
    # every spelling of Go's strconv.ParseBool, which the reference driver uses
    ({"encryptInTransit": "0"}, VolumeContext(encrypt_in_transit=False)),
    ({"encryptInTransit": "F"}, VolumeContext(encrypt_in_transit=False)),
    ({"encryptInTransit": "False"}, VolumeContext(encrypt_in_transit=False)),
    ({"encryptInTransit": "f"}, VolumeContext(encrypt_in_transit=False)),
    ({"crossaccount": "1"}, VolumeContext(cross_account=True)),
    ({"crossaccount": "T"}, VolumeContext(cross_account=True)),
    ({"storage.kubernetes.io/csiProvisionerIdentity": "123-efs.csi.aws.com"}, VolumeContext()),
    ({"capacityBytes": "5368709120"}, VolumeContext(capacity_bytes=5368709120)),
    ({"mounttargetipmap": '{"us-east-1a": "10.0.1.1", "us-east-1b": "10.0.2.1"}'},
     VolumeContext(mount_target_ip_map={"us-east-1a": "10.0.1.1", "us-east-1b": "10.0.2.1"})),
])
def test_accepted(context: dict[str, str], expected: VolumeContext) -> None:
    assert parse_volume_context(context) == expected


@pytest.mark.parametrize(("context", "named"), [
    ({"path": "/x"}, "'path'"),
    ({"mountOptions": "tls"}, "'mountOptions'"),
    ({"encryptInTransit": "maybe"}, "encryptInTransit"),
    ({"crossaccount": "yes please"}, "crossaccount"),
    ({"mounttargetip": "10.0.0.5,nosuid"}, "mounttargetip"),
    ({"mounttargetip": "not-an-ip"}, "mounttargetip"),
    ({"mounttargetipmap": "{"}, "mounttargetipmap"),
    ({"mounttargetipmap": "[1]"}, "mounttargetipmap"),
    ({"mounttargetipmap": '{"us-east-1a": "10.0.0.1 ro"}'}, "mounttargetipmap.us-east-1a"),
    ({"mounttargetipmap": '{"us-east-1a": 5}'}, "mounttargetipmap"),
    ({"capacityBytes": "-1"}, "capacityBytes"),
    ({"capacityBytes": "1Gi"}, "capacityBytes"),
])
def test_rejected_naming_the_key(context: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidArgument, match=named):
        parse_volume_context(context)


@pytest.mark.parametrize(("zone", "expected"), [
    ("us-east-1a", "10.0.1.1"),  # this node's zone wins over the single IP
    ("us-east-1c", "10.9.9.9"),  # not in the map: the single IP
    (None, "10.9.9.9"),
])
def test_mount_target_ip_for_zone(zone: str | None, expected: str) -> None:
    context = parse_volume_context({"mounttargetip": "10.9.9.9",
                                    "mounttargetipmap": '{"us-east-1a": "10.0.1.1"}'})
    assert context.mount_target_for(zone) == (expected, None)


@pytest.mark.parametrize("zone", ["us-west-2a", None])
def test_map_without_own_zone_falls_back_to_another_zone(zone: str | None) -> None:
    """As the reference driver does (cross-account mounts depend on it); the first zone by
    name, so every node without its own mount target picks the same one."""
    context = parse_volume_context(
        {"mounttargetipmap": '{"us-east-1c": "10.0.3.1", "us-east-1a": "10.0.1.1"}'})
    assert context.mount_target_for(zone) == ("10.0.1.1", "us-east-1a")


def test_no_mount_target_anywhere_gives_none() -> None:
    assert parse_volume_context({}).mount_target_for("us-east-1a") == (None, None)
