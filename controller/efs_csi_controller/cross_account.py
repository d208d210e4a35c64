"""Which EFS API a request talks to, and what the node needs to reach a foreign file system.

Secrets ``awsRoleArn`` (with optional ``externalId``) select a Cloud acting under an assumed
role (``efs_csi.cloud.Clouds.cloud_for``, which caches one per role); ``crossaccount=true``
makes the volume context carry mount target addresses (``efs_csi.contract.volume_context``),
because the node cannot resolve another account's file system DNS name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from efs_csi.booleans import EXPECTED, parse_bool_text
from efs_csi.cloud import MountTarget
from efs_csi.contract.volume_context import VolumeContext
from efs_csi.errors import FailedPrecondition, InvalidArgument

ROLE_ARN_SECRET = "awsRoleArn"
EXTERNAL_ID_SECRET = "externalId"
CROSS_ACCOUNT_SECRET = "crossaccount"
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")


@dataclass(frozen=True)
class CrossAccount:
    role_arn: str | None
    external_id: str | None
    mount_target_addresses: bool


def parse_secrets(secrets: Mapping[str, str]) -> CrossAccount:
    role_arn = secrets.get(ROLE_ARN_SECRET) or None
    if role_arn is not None and not _ROLE_ARN.fullmatch(role_arn):
        raise InvalidArgument(f"secret {ROLE_ARN_SECRET}: expected an IAM role ARN "
                              "(arn:aws:iam::<account>:role/<name>)")
    flag = parse_bool_text(secrets.get(CROSS_ACCOUNT_SECRET) or "false")
    if flag is None:
        raise InvalidArgument(f"secret {CROSS_ACCOUNT_SECRET}: expected {EXPECTED}")
    return CrossAccount(role_arn, secrets.get(EXTERNAL_ID_SECRET) or None, flag)


def mount_target_addresses(mount_targets: list[MountTarget], file_system_id: str,
                           az: str | None) -> VolumeContext:
    """The volume context that lets the node mount by IP (the StorageClass's zone's mount
    target, or one per zone when no zone is set), cross-account."""
    available = {mt.availability_zone_name: mt.ip_address for mt in mount_targets
                 if mt.life_cycle_state == "available"}
    if not available:
        raise FailedPrecondition(f"file system {file_system_id} has no available mount "
                                 "target for a cross-account mount")
    if az is not None:
        if az not in available:
            raise FailedPrecondition(f"file system {file_system_id} has no available mount "
                                     f"target in az {az} (have: {', '.join(sorted(available))})")
        return VolumeContext(cross_account=True, mount_target_ip=available[az])
    return VolumeContext(cross_account=True, mount_target_ip_map=available)
