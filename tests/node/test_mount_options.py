"""Table tests for mount-option building, including injection attempts."""

from __future__ import annotations

import pytest

from efs_csi.errors import InvalidArgument
from efs_csi.volume_id import parse_volume_id
from node.mount_options import build_mount_options
from node.volume_context import parse_volume_context

FS = "fs-0123456789abcdef0"
AP = "fsap-0123456789abcdef0"
OTHER_AP = "fsap-fedcba98765432100"


def build(handle: str = FS, context: dict[str, str] | None = None,
          user: tuple[str, ...] = (), read_only: bool = False,
          zone: str | None = None) -> list[str]:
    return build_mount_options(parse_volume_id(handle), parse_volume_context(context or {}),
                               user, read_only=read_only, zone=zone)


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, ["tls"]),
    ({"context": {"encryptInTransit": "false"}}, []),
    ({"handle": f"{FS}::{AP}"}, ["tls", f"accesspoint={AP}"]),
    ({"handle": f"{FS}:/a/b:{AP}"}, ["tls", f"accesspoint={AP}"]),
    ({"read_only": True}, ["tls", "ro"]),
    ({"user": ("iam", "lookupcache=pos", "noresvport")},
     ["tls", "iam", "lookupcache=pos", "noresvport"]),
    ({"user": ("NoResvPort",)}, ["tls", "NoResvPort"]),  # case kept
    ({"user": ("tls",)}, ["tls"]),  # no duplicate
    ({"user": ("ro",), "read_only": True}, ["tls", "ro"]),
    ({"handle": f"{FS}::{AP}", "user": (f"accesspoint={AP}",)}, ["tls", f"accesspoint={AP}"]),
    ({"context": {"crossaccount": "true"}}, ["tls", "crossaccount"]),
    ({"context": {"mounttargetip": "10.0.0.9"}}, ["tls", "mounttargetip=10.0.0.9"]),
    ({"context": {"mounttargetipmap": '{"az-a": "10.0.1.1"}', "mounttargetip": "10.0.0.9"},
      "zone": "az-a"}, ["tls", "mounttargetip=10.0.1.1"]),
])
def test_built(kwargs: dict[str, object], expected: list[str]) -> None:
    assert build(**kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"user": ("crossaccount",)}, "crossaccount"),
    ({"user": ("CrossAccount",)}, "crossaccount"),
    ({"handle": f"{FS}::{AP}", "user": (f"accesspoint={OTHER_AP}",)}, "conflicts"),
    ({"user": ("accesspoint=../../etc",)}, "not a valid access point"),
    ({"context": {"encryptInTransit": "false"}, "user": ("tls",)}, "encryptInTransit=false"),
    # injection attempts
    ({"user": ("iam,crossaccount",)}, "','"),
    ({"user": ("noresvport,accesspoint=" + OTHER_AP,)}, "','"),
    ({"user": ("iam tls",)}, "whitespace"),
    ({"user": ("iam\ttls",)}, "whitespace"),
    ({"user": ("iam\nfs-1",)}, "whitespace"),
    ({"user": ("iam\x00",)}, "control character"),
    ({"user": ("iam\x1b[0m",)}, "control character"),
    ({"user": ("iam\u2028",)}, "control character"),
    ({"user": ("",)}, "empty"),
    ({"context": {"mounttargetip": "10.0.0.9"}, "user": ("mounttargetip=1.2.3.4",)},
     "conflicts"),
])
def test_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match="mount_flags") as caught:
        build(**kwargs)  # type: ignore[arg-type]
    assert message in caught.value.message
