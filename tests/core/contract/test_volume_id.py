import pytest

from efs_csi.contract.volume_id import VolumeHandle, parse_volume_id
from efs_csi.errors import InvalidArgument

FS = "fs-0123abcd"
AP = "fsap-0123456789abcdef0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (FS, VolumeHandle(FS)),
        (f"{FS}:/data", VolumeHandle(FS, "/data")),
        (f"{FS}::{AP}", VolumeHandle(FS, "", AP)),
        (f"{FS}:/a/b:{AP}", VolumeHandle(FS, "/a/b", AP)),
        (f"efs:{FS}", VolumeHandle(FS)),
        (f"efs:{FS}:/x:{AP}", VolumeHandle(FS, "/x", AP)),
        ("fs-" + "a" * 40, VolumeHandle("fs-" + "a" * 40)),
        # empty fields, as the reference driver accepts them
        (f"{FS}:", VolumeHandle(FS)),
        (f"{FS}::", VolumeHandle(FS)),
        (f"{FS}:/data:", VolumeHandle(FS, "/data")),
        (f"efs:{FS}::", VolumeHandle(FS)),
    ],
)
def test_valid_handles(text: str, expected: VolumeHandle) -> None:
    assert parse_volume_id(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "required"),
        ("fs-123", "file system id"),
        ("fs-0123ABCD", "file system id"),
        ("fs-" + "a" * 41, "file system id"),
        ("vol-0123abcd", "file system id"),
        (f"{FS}:/a:fsap-xyz", "access point id"),
        (f"{FS}::fsap-0123abcd,tls", "access point id"),
        (f"{FS}:/a:{AP}:extra", "too many"),
        (f"{FS}:::", "too many"),
        (f"{FS}::fsap-", "access point id"),
        (f"{FS}:relative", "absolute"),
        (f"{FS}:/a/../b", "'..'"),
        (f"{FS}:/a\nb", "control"),
        (f"{FS},tls", "file system id"),
        (f" {FS}", "file system id"),
    ],
)
def test_invalid_handles_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_volume_id(text)
    assert fragment in caught.value.message


@pytest.mark.parametrize("handle", [VolumeHandle(FS), VolumeHandle(FS, "/p"),
                                    VolumeHandle(FS, "", AP), VolumeHandle(FS, "/p", AP)])
def test_format_round_trips(handle: VolumeHandle) -> None:
    assert parse_volume_id(str(handle)) == handle


@pytest.mark.parametrize(("text", "shortest"), [(f"{FS}:", FS), (f"{FS}::", FS),
                                                (f"{FS}:/p:", f"{FS}:/p")])
def test_empty_fields_are_written_back_in_the_shortest_form(text: str, shortest: str) -> None:
    assert str(parse_volume_id(text)) == shortest
