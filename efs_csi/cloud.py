"""What the driver needs from the EFS API, without any boto import.

``Cloud`` is implemented by ``efs_csi.adapters.aws.cloud.AwsCloud`` (aiobotocore) and by one
fake in tests (``testbed/fake_cloud.py``); ``Clouds`` hands a use case the ``Cloud`` of
a request (the controller's own, or an assumed role's). A new EFS call is added to ``Cloud``,
``AwsCloud`` and the fake, nowhere else. It raises ``efs_csi.errors`` exceptions only,
translated in ``efs_csi.adapters.aws.errors``, so use cases never see botocore's error shapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from efs_csi.errors import AlreadyExists


@dataclass(frozen=True, slots=True)
class PosixUser:
    uid: int
    gid: int
    secondary_gids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CreationInfo:
    owner_uid: int
    owner_gid: int
    permissions: str  # octal text such as "0755"


#: Access point states in which it is as good as gone (being deleted, or deleted).
GONE_STATES = frozenset({"deleting", "deleted"})


@dataclass(frozen=True, slots=True)
class AccessPoint:
    access_point_id: str
    file_system_id: str
    root_path: str
    posix_user: PosixUser | None = None
    creation_info: CreationInfo | None = None
    client_token: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    life_cycle_state: str = "available"


@dataclass(frozen=True)
class FileSystem:
    file_system_id: str
    # Set for One Zone file systems: the zone the file system lives in.
    availability_zone_name: str | None = None
    life_cycle_state: str = "available"


@dataclass(frozen=True)
class MountTarget:
    mount_target_id: str
    file_system_id: str
    ip_address: str
    availability_zone_name: str
    life_cycle_state: str = "available"


@dataclass(frozen=True)
class AccessPointRequest:
    file_system_id: str
    client_token: str
    root_path: str
    posix_user: PosixUser
    creation_info: CreationInfo
    tags: Mapping[str, str] = field(default_factory=dict)


class AccessPointAlreadyExistsError(AlreadyExists):
    """CreateAccessPoint found the client token taken; ``access_point_id`` is the existing
    access point when EFS names it (real EFS does; look it up and compare if it is None)."""

    def __init__(self, message: str, *, access_point_id: str | None = None) -> None:
        super().__init__(message)
        self.access_point_id = access_point_id


class Cloud(Protocol):
    async def describe_file_system(self, file_system_id: str) -> FileSystem:
        """NotFound when the file system does not exist."""

    def access_points(self, file_system_id: str) -> AsyncIterator[AccessPoint]:
        """Every access point of a file system, following NextToken pages."""

    async def describe_access_point(self, access_point_id: str) -> AccessPoint:
        """NotFound when the access point does not exist."""

    async def create_access_point(self, request: AccessPointRequest) -> AccessPoint:
        """AlreadyExists (``AccessPointAlreadyExistsError``) when the token is taken."""

    async def delete_access_point(self, access_point_id: str) -> None:
        """NotFound when the access point does not exist."""

    async def mount_targets(self, file_system_id: str) -> list[MountTarget]: ...


class Clouds(Protocol):
    """Where a use case gets its ``Cloud`` for a request: the controller's own, or one acting
    under an assumed IAM role (cross-account volumes). Implemented by
    ``efs_csi.adapters.aws.roles.CloudFactory`` (which caches one cloud per role), by the
    controller's ``WaitingClouds`` (until that factory exists) and by the fake."""

    async def cloud_for(self, role_arn: str | None, external_id: str | None = None) -> Cloud:
        """The cloud acting as ``role_arn`` (the controller's own when None)."""


class ApiObserver(Protocol):
    """Told about every EFS API attempt, retries included (metrics hang off this)."""

    def observe_call(self, operation: str, seconds: float, error_code: str | None, *,
                     throttled: bool) -> None:
        """One attempt took ``seconds``; ``error_code`` when it failed, ``throttled`` when AWS
        told it to slow down (the adapter's one vocabulary of throttle codes decides)."""

    def observe_retry(self, operation: str, reason: str) -> None:
        """A failed attempt will be made again; ``reason``: throttled, transient or timeout."""
