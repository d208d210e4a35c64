"""The cloud used when no AWS region is configured: every call explains what is missing.

The process still starts and serves Identity (so a misconfigured Deployment is visible
through its logs and the CSI calls' errors instead of a crash loop), and every EFS-backed RPC
answers FAILED_PRECONDITION naming the fix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NoReturn

from efs_csi.cloud import AccessPoint, AccessPointRequest, FileSystem, MountTarget
from efs_csi.errors import FailedPrecondition

MESSAGE = "no AWS region configured: start the controller with --region or set AWS_REGION"


def _fail() -> NoReturn:
    raise FailedPrecondition(MESSAGE)


class NoRegionCloud:
    async def describe_file_system(self, file_system_id: str) -> FileSystem:
        _fail()

    async def access_points(self, file_system_id: str) -> AsyncIterator[AccessPoint]:
        _fail()
        yield  # pragma: no cover - makes this an async generator like the real one

    async def describe_access_point(self, access_point_id: str) -> AccessPoint:
        _fail()

    async def create_access_point(self, request: AccessPointRequest) -> AccessPoint:
        _fail()

    async def delete_access_point(self, access_point_id: str) -> None:
        _fail()

    async def mount_targets(self, file_system_id: str) -> list[MountTarget]:
        _fail()

    async def cloud_for(self, role_arn: str | None, external_id: str | None = None
                        ) -> NoRegionCloud:
        return self
