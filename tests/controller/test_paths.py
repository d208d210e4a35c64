"""Access point root paths: templating, uniqueness suffix and the limits of EFS."""

from __future__ import annotations

import pytest

from efs_csi.errors import InvalidArgument
from efs_csi_controller.params import PvcMetadata
from efs_csi_controller.paths import root_path, unique_suffix

META = PvcMetadata(pvc_name="data", pvc_namespace="team", pv_name="pvc-1234")


def make(base: str = "", pattern: str = "${.PV.name}", unique: bool = False,
         meta: PvcMetadata = META, name: str = "pvc-1234") -> str:
    return root_path(base_path=base, sub_path_pattern=pattern, metadata=meta,
                     ensure_unique_directory=unique, volume_name=name)


@pytest.mark.parametrize(("base", "pattern", "expected"), [
    ("", "${.PV.name}", "/pvc-1234"),
    ("/dynamic", "${.PV.name}", "/dynamic/pvc-1234"),
    ("dynamic/", "${.PVC.namespace}/${.PVC.name}", "/dynamic/team/data"),
    ("/a/b", "x-${.PVC.name}-y", "/a/b/x-data-y"),
    ("", "", "/"),
])
def test_templating(base: str, pattern: str, expected: str) -> None:
    assert make(base, pattern) == expected


def test_unique_suffix_is_stable_per_volume_name() -> None:
    first = make("/base", "${.PVC.name}", unique=True, name="pvc-a")
    assert first == make("/base", "${.PVC.name}", unique=True, name="pvc-a")
    assert first == f"/base/data-{unique_suffix('pvc-a')}"
    assert first != make("/base", "${.PVC.name}", unique=True, name="pvc-b")
    assert make("/base", "", unique=True, name="pvc-a") == f"/base/{unique_suffix('pvc-a')}"


@pytest.mark.parametrize(("base", "pattern", "meta", "named"), [
    ("", "${.PVC.labels}", META, "unknown variable"),
    ("", "${.PVC.name}", PvcMetadata(), "extra-create-metadata"),
    ("", "$HOME", META, "'$' is only allowed"),
    ("", "a/../b", META, "must not start with '.'"),
    ("/..", "x", META, "basePath"),
    ("/a;rm", "x", META, "forbidden character"),
    ("/a/b/c", "d/e", META, "5 components"),
    ("/" + "x" * 95, "${.PV.name}", META, "characters"),
    ("", "a*b", META, "forbidden"),
])
def test_rejected(base: str, pattern: str, meta: PvcMetadata, named: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        make(base, pattern, meta=meta)
    assert named in raised.value.message


def test_default_pattern_is_shortened_to_fit_and_stays_unique() -> None:
    long_name = "pvc-" + "x" * 124
    meta = PvcMetadata(pv_name=long_name)
    first = root_path(base_path="/base", sub_path_pattern="${.PV.name}", metadata=meta,
                      ensure_unique_directory=True, volume_name=long_name, shorten_to_fit=True)
    assert len(first) == 100 and first.endswith(unique_suffix(long_name))
    other = root_path(base_path="/base", sub_path_pattern="${.PV.name}",
                      metadata=PvcMetadata(pv_name=long_name + "y"),
                      ensure_unique_directory=False, volume_name=long_name + "y",
                      shorten_to_fit=True)
    assert len(other) == 100 and other != first
    with pytest.raises(InvalidArgument):  # an explicit pattern is never rewritten
        root_path(base_path="/base", sub_path_pattern="${.PV.name}", metadata=meta,
                  ensure_unique_directory=True, volume_name=long_name)
