"""--tags parsing and the tags put on access points."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efs_csi.errors import InvalidArgument
from efs_csi_controller.params import PvcMetadata
from efs_csi_controller.paths import normalised_base_path
from efs_csi_controller.tags import (
    CLUSTER_TAG,
    access_point_tags,
    parse_cluster_id,
    parse_tags,
    tag_value,
)
from testbed.efs_rules import tag_violations


@pytest.mark.parametrize(("text", "expected"), [
    ("", {}),
    ("a:b", {"a": "b"}),
    ("a:b  c:d", {"a": "b", "c": "d"}),
    (r"team\ name:x\:y", {"team name": "x:y"}),
    ("empty:", {"empty": ""}),
])
def test_parse_tags(text: str, expected: dict[str, str]) -> None:
    assert parse_tags(text) == expected


@pytest.mark.parametrize("text", ["novalue", "a:b:c", ":v", "a:b\\", r"a:\q", "aws:x:y",
                                  "aws\\:x:y",
                                  "efs.csi.aws.com/cluster:x"])
def test_bad_tags(text: str) -> None:
    with pytest.raises(ValueError, match="--tags"):
        parse_tags(text)


def test_access_point_tags() -> None:
    tags = access_point_tags(enabled=True, extra={"team": "a"},
                             metadata=PvcMetadata("data", "ns", "pv-1"), capacity_bytes=5,
                             base_path="/")
    assert tags["efs.csi.aws.com/cluster"] == "true"  # the legacy value without --cluster-id
    assert tags["team"] == "a"
    assert tags["kubernetes.io/created-for/pv/name"] == "pv-1"
    assert tags["kubernetes.io/created-for/pvc/namespace"] == "ns"
    assert access_point_tags(enabled=False, extra={}, metadata=PvcMetadata(),
                             capacity_bytes=0, base_path="/") == {}
    with pytest.raises(InvalidArgument, match="enableTagging"):
        access_point_tags(enabled=False, extra={"a": "b"}, metadata=PvcMetadata(),
                          capacity_bytes=0, base_path="/")


# EFS's Tag rules, judged by testbed.efs_rules (the documented patterns, verbatim) ------

AWKWARD_BASE_PATHS = ["/team(a)", "/data,v2", "/50%", "/a@b", "/x!y[1]~", "/caf\u00e9/\u00fcber",
                      "/\U0001f600", "/emoji" + "\U0001f600" * 40, "/" + "a" * 99, "/"]


@pytest.mark.parametrize("base_path", AWKWARD_BASE_PATHS)
def test_tags_follow_efs_rules_for_any_valid_base_path(base_path: str) -> None:
    tags = access_point_tags(enabled=True, extra={"team": "storage"},
                             metadata=PvcMetadata("data", "ns", "pv-1"), capacity_bytes=5 << 30,
                             base_path=normalised_base_path(base_path))
    assert tag_violations(tags) == []


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_tag_value_is_always_a_valid_efs_tag_value(text: str) -> None:
    assert tag_violations({"k": tag_value(text)}) == []


@given(st.text(max_size=60), st.text(max_size=60))
def test_tag_value_tells_different_texts_apart(one: str, other: str) -> None:
    if one != other:
        assert tag_value(one) != tag_value(other)


@pytest.mark.parametrize(("text", "expected"), [
    ("/dyn/team-a_1.x", "/dyn/team-a_1.x"),  # already valid: unchanged
    ("/team(a)", "/team@28a@29"),
    ("/data,v2", "/data@2Cv2"),
    ("/50%", "/50@25"),
    ("/a@b", "/a@40b"),  # the escape character itself
])
def test_tag_value_escapes_only_what_efs_refuses(text: str, expected: str) -> None:
    assert tag_value(text) == expected


@pytest.mark.parametrize("text", ["team:a(b)", "co$t:x", "k:v%", "a,b:c", "k:v&w",
                                  r"path:c\\d"])
def test_operator_tags_efs_would_refuse_stop_the_controller(text: str) -> None:
    with pytest.raises(ValueError, match="EFS does not allow"):
        parse_tags(text)


def test_the_cluster_tag_carries_the_cluster_id() -> None:
    tags = access_point_tags(enabled=True, extra={"team": "a"}, metadata=PvcMetadata(),
                             capacity_bytes=5, base_path="/", cluster_id="prod-eu-1")
    assert tags[CLUSTER_TAG] == "prod-eu-1"
    assert tag_violations(tags) == []


@pytest.mark.parametrize(("text", "accepted"), [
    ("prod-eu-1", True), ("0b6f6a7e-3c5d-4c86-9d1e-1f2a3b4c5d6e", True), ("true", True),
    ("", False), ("a,b", False), ("x" * 257, False), ("semi;colon", False)])
def test_cluster_id_follows_the_tag_value_rules(text: str, accepted: bool) -> None:
    if accepted:
        assert parse_cluster_id(text) == text
        assert tag_violations({CLUSTER_TAG: text}) == []
    else:
        with pytest.raises(ValueError, match="--cluster-id"):
            parse_cluster_id(text)
