"""Table tests for mount-option building, including injection attempts, and a property test
of every option set against efs-utils' own rules (testbed.efs_rules)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efs_csi.contract.volume_context import parse_volume_context
from efs_csi.contract.volume_id import parse_volume_id
from efs_csi.errors import InvalidArgument
from efs_csi_node.mount_options import MountOptions, build_mount_options
from efs_csi_node.tls_policy import WEAKENING_OPTIONS, weakening_option
from testbed.efs_rules import efs_utils_refusal

FS = "fs-0123456789abcdef0"
AP = "fsap-0123456789abcdef0"
OTHER_AP = "fsap-fedcba98765432100"


def built(handle: str = FS, context: dict[str, str] | None = None,
          user: tuple[str, ...] = (), read_only: bool = False,
          zone: str | None = None, allowed: frozenset[str] = frozenset()) -> MountOptions:
    return build_mount_options(parse_volume_id(handle), parse_volume_context(context or {}),
                               user, read_only=read_only, zone=zone, allowed_insecure=allowed)


def build(**kwargs: object) -> list[str]:
    return built(**kwargs).options  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, ["tls"]),
    ({"context": {"encryptInTransit": "false"}, "allowed": frozenset({"notls"})}, []),
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
    # no mount target in this node's zone: another zone's, as the reference does
    ({"context": {"mounttargetipmap": '{"az-b": "10.0.2.1", "az-c": "10.0.3.1"}'},
      "zone": "az-a"}, ["tls", "mounttargetip=10.0.2.1"]),
    # an access point always brings TLS (efs-utils refuses accesspoint= without it)
    ({"handle": f"{FS}::{AP}", "context": {"encryptInTransit": "false"}},
     ["tls", f"accesspoint={AP}"]),
    ({"handle": f"{FS}::{AP}", "context": {"encryptInTransit": "false"}, "user": ("tls",)},
     ["tls", f"accesspoint={AP}"]),
    # a flag holding commas is several options, each taken on its own
    ({"user": ("iam,noresvport",)}, ["tls", "iam", "noresvport"]),
    ({"user": ("iam,tls", "ro"), "read_only": True}, ["tls", "ro", "iam"]),
    # options that would let the PV pick the node's credential source are dropped
    ({"user": ("awscredsuri=/v2/credentials/x", "iam")}, ["tls", "iam"]),
    ({"user": ("iam,AwsCredsUri=/x",)}, ["tls", "iam"]),
    ({"user": ("jwtpath=/var/run/secrets/other/token", "iam")}, ["tls", "iam"]),
    ({"user": ("iam", "awsprofile=team")}, ["tls", "iam", "awsprofile=team"]),
    ({"context": {"encryptInTransit": "false"}, "user": ("notls",),
      "allowed": frozenset({"notls"})}, ["notls"]),
])
def test_built(kwargs: dict[str, object], expected: list[str]) -> None:
    assert build(**kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"user": ("crossaccount",)}, "crossaccount"),
    ({"user": ("CrossAccount",)}, "crossaccount"),
    ({"handle": f"{FS}::{AP}", "user": (f"accesspoint={OTHER_AP}",)}, "conflicts"),
    ({"user": ("accesspoint=../../etc",)}, "not a valid access point"),
    ({"context": {"encryptInTransit": "false"}, "user": ("tls",)}, "encryptInTransit=false"),
    # injection attempts: every option of a comma-separated flag is checked
    ({"user": ("iam,crossaccount",)}, "crossaccount"),
    ({"handle": f"{FS}::{AP}", "user": ("noresvport,accesspoint=" + OTHER_AP,)},
     "conflicts"),
    ({"user": ("noresvport,accesspoint=../x",)}, "not a valid access point"),
    ({"user": ("iam,,tls",)}, "empty option"),
    ({"user": ("iam,",)}, "empty option"),
    ({"user": ("a=b=c",)}, "key=value"),
    ({"user": ("=x",)}, "key=value"),
    # what efs-utils would refuse, refused first
    ({"user": ("port=2049",)}, "'port' cannot be combined with TLS"),
    ({"user": ("notls",)}, "'notls' cannot be combined with TLS"),
    ({"handle": f"{FS}::{AP}", "context": {"encryptInTransit": "false"}, "user": ("notls",)},
     "'notls'"),
    ({"user": ("ocsp,noocsp",)}, "'ocsp' and 'noocsp'"),
    ({"user": ("tlsport=high",)}, "tlsport"),
    ({"context": {"encryptInTransit": "false"}, "user": ("iam",),
      "allowed": frozenset({"notls"})}, "'iam' needs TLS"),
    ({"user": ("awsprofile=team",)}, "'awsprofile' needs 'iam'"),
    ({"user": ("capath=/etc/ssl",)}, "'capath'"),
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


def test_notes_say_what_was_dropped_or_implied() -> None:
    notes = built(handle=f"{FS}::{AP}", context={"encryptInTransit": "false"},
                  user=("awscredsuri=/x",)).notes
    assert any("encryptInTransit=false ignored" in note for note in notes)
    assert any("'awscredsuri' dropped" in note for note in notes)
    fallback = built(context={"mounttargetipmap": '{"az-b": "10.0.2.1"}'}, zone="az-a").notes
    assert fallback == ["no mount target IP for this node's zone az-a; using the one in az-b"]


# Every option set the node builds passes efs-utils' own checks ---------------------------

REAL_AP = "fsap-0123456789abcdef0"  # EFS's ids (and efs-utils' pattern): 17 hex digits
VOCABULARY = ["tls", "notls", "iam", "ro", "noresvport", "port=2049", "tlsport=20049",
              "tlsport=x", "ocsp", "noocsp", "awsprofile=team", "awscredsuri=/creds",
              "verify=0", "verify=2", "cafile=/tmp/ca.pem", "netns=/proc/1/ns/net", "stunnel",
              "awscredsuri=creds", "jwtpath=/t", "rolearn=arn:aws:iam::1:role/r",
              "accesspoint=" + REAL_AP, "accesspoint=fsap-fedcba98765432100", "crossaccount",
              "mounttargetip=10.0.0.7", "capath=/x", "a=b=c", "TLS", "IAM", "lookupcache=pos"]
flags = st.lists(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=3).map(",".join),
                 max_size=3)
contexts = st.fixed_dictionaries({}, optional={
    "encryptInTransit": st.sampled_from(["true", "false", "0", "T"]),
    "crossaccount": st.sampled_from(["true", "false"]),
    "mounttargetip": st.just("10.0.0.9"),
    "mounttargetipmap": st.just('{"az-b": "10.0.2.1"}')})


@settings(max_examples=500)
@given(handle=st.sampled_from([FS, f"{FS}::{REAL_AP}", f"{FS}:/a:{REAL_AP}", f"{FS}:/a",
                               f"{FS}::"]),
       context=contexts, user=flags, read_only=st.booleans(),
       zone=st.sampled_from([None, "az-a", "az-b"]),
       allowed=st.frozensets(st.sampled_from(sorted(WEAKENING_OPTIONS))))
def test_every_option_set_built_passes_efs_utils_checks(handle: str, context: dict[str, str],
                                                        user: list[str], read_only: bool,
                                                        zone: str | None,
                                                        allowed: frozenset[str]) -> None:
    try:
        options = build(handle=handle, context=context, user=tuple(user), read_only=read_only,
                        zone=zone, allowed=allowed)
    except InvalidArgument as refused:
        # refused naming the field, never a crash
        assert "mount_flags" in refused.message or "encryptInTransit" in refused.message
        return
    assert efs_utils_refusal(options) is None, options
    # Nothing that weakens TLS gets through unless allowed by name.
    assert {entry.name for option in options
            if (entry := weakening_option(option)) is not None} <= allowed, (options, allowed)
    if "tls" not in options:
        assert "notls" in allowed, options
