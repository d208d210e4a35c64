import pytest

from efs_csi import csi
from efs_csi.capabilities import (
    SUPPORTED_ACCESS_MODES,
    capability_problem,
    is_read_only,
    validate_capabilities,
)
from efs_csi.errors import InvalidArgument

Mode = csi.VolumeCapabilityAccessModeMode


def mount_cap(mode: Mode, fs_type: str = "") -> csi.VolumeCapability:
    return csi.VolumeCapability(mount=csi.VolumeCapabilityMountVolume(fs_type=fs_type),
                                access_mode=csi.VolumeCapabilityAccessMode(mode=mode))


@pytest.mark.parametrize("mode", sorted(SUPPORTED_ACCESS_MODES, key=int))
def test_every_supported_mode_is_accepted(mode: Mode) -> None:
    assert capability_problem(mount_cap(mode)) is None


def test_seven_modes_are_supported() -> None:
    assert len(SUPPORTED_ACCESS_MODES) == 7
    assert Mode.UNKNOWN not in SUPPORTED_ACCESS_MODES


@pytest.mark.parametrize(
    ("capability", "fragment"),
    [
        (csi.VolumeCapability(block=csi.VolumeCapabilityBlockVolume(),
                              access_mode=csi.VolumeCapabilityAccessMode(
                                  mode=Mode.SINGLE_NODE_WRITER)), "block"),
        (csi.VolumeCapability(access_mode=csi.VolumeCapabilityAccessMode(
            mode=Mode.SINGLE_NODE_WRITER)), "access_type"),
        (mount_cap(Mode.SINGLE_NODE_WRITER, "ext4"), "fs_type"),
        (csi.VolumeCapability(mount=csi.VolumeCapabilityMountVolume()), "access_mode"),
        (mount_cap(Mode.UNKNOWN), "not supported"),
        (csi.VolumeCapability.parse(bytes(mount_cap(Mode.SINGLE_NODE_WRITER))[:-1] + b"\x63"),
         "not supported"),
    ],
)
def test_problems_are_named(capability: csi.VolumeCapability, fragment: str) -> None:
    problem = capability_problem(capability)
    assert problem is not None and fragment in problem


def test_validate_names_field_and_index() -> None:
    good = mount_cap(Mode.MULTI_NODE_MULTI_WRITER, "efs")
    with pytest.raises(InvalidArgument, match=r"volume_capabilities\[1\]: block"):
        validate_capabilities([good, csi.VolumeCapability(block=csi.VolumeCapabilityBlockVolume())])
    with pytest.raises(InvalidArgument, match="volume_capability is required"):
        validate_capabilities([], field="volume_capability")
    validate_capabilities([good])


def test_reader_only_modes_are_read_only() -> None:
    assert is_read_only(mount_cap(Mode.MULTI_NODE_READER_ONLY))
    assert is_read_only(mount_cap(Mode.SINGLE_NODE_READER_ONLY))
    assert not is_read_only(mount_cap(Mode.MULTI_NODE_MULTI_WRITER))
