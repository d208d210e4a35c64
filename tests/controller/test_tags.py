"""--tags parsing and the tags put on access points."""

from __future__ import annotations

import pytest

from controller.params import PvcMetadata
from controller.tags import access_point_tags, parse_tags
from efs_csi.errors import InvalidArgument


@pytest.mark.parametrize(("text", "expected"), [
    ("", {}),
    ("a:b", {"a": "b"}),
    ("a:b  c:d", {"a": "b", "c": "d"}),
    (r"team\ name:x\:y", {"team name": "x:y"}),
    (r"path:c\\d", {"path": "c\\d"}),
    ("empty:", {"empty": ""}),
])
def test_parse_tags(text: str, expected: dict[str, str]) -> None:
    assert parse_tags(text) == expected


@pytest.mark.parametrize("text", ["novalue", "a:b:c", ":v", "a:b\\", r"a:\q", "aws:x:y",
                                  "aws\\:x:y"])
def test_bad_tags(text: str) -> None:
    with pytest.raises(ValueError, match="--tags"):
        parse_tags(text)


def test_access_point_tags() -> None:
    tags = access_point_tags(enabled=True, extra={"team": "a"},
                             metadata=PvcMetadata("data", "ns", "pv-1"), capacity_bytes=5,
                             base_path="/")
    assert tags["efs.csi.aws.com/cluster"] == "true"
    assert tags["team"] == "a"
    assert tags["kubernetes.io/created-for/pv/name"] == "pv-1"
    assert tags["kubernetes.io/created-for/pvc/namespace"] == "ns"
    assert access_point_tags(enabled=False, extra={}, metadata=PvcMetadata(),
                             capacity_bytes=0, base_path="/") == {}
    with pytest.raises(InvalidArgument, match="enableTagging"):
        access_point_tags(enabled=False, extra={"a": "b"}, metadata=PvcMetadata(),
                          capacity_bytes=0, base_path="/")
