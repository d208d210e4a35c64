"""``FakeCloud``: the EFS API (``efs_csi.cloud.Cloud``) in memory, and its own ``Clouds`` (every
role's EFS API is this one; the roles asked are recorded): the one stand-in for the cloud port.
``RecordingObserver``: what an EFS adapter reports to its observer, recorded.

It exists for races and limits the moto-backed tests cannot produce on demand: pausing creates
mid-flight (``gate``), failing them, counting calls, tiny pages, and access points made behind
the controller's back. It follows real EFS where it matters here: ClientToken idempotency,
AccessPointAlreadyExists for a reused token with other parameters (the token is unique per
account, across file systems), FileSystemNotFound, AccessPointNotFound on delete.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace

from efs_csi.cloud import (
    AccessPoint,
    AccessPointAlreadyExistsError,
    AccessPointRequest,
    FileSystem,
    MountTarget,
)
from efs_csi.errors import AlreadyExists, Internal, NotFound


class FakeCloud:
    def __init__(self, *file_system_ids: str, page_size: int = 100) -> None:
        self.file_systems = {fs: FileSystem(fs) for fs in file_system_ids}
        self.access_points_by_id: dict[str, AccessPoint] = {}
        self.mount_targets_by_fs: dict[str, list[MountTarget]] = {}
        self.calls: Counter[str] = Counter()
        self.page_size = page_size
        self.gate: asyncio.Event | None = None  # when set to an unset Event, creates wait
        self.fail_creates = 0
        self.name_conflicts = False  # AccessPointAlreadyExists names the access point
        # False: a repeated ClientToken makes another access point, as moto does (EFS never).
        self.honours_client_tokens = True
        self.roles_asked: list[tuple[str, str | None]] = []  # cloud_for's roles, in order
        self._ids = itertools.count(0x10000000)

    def number_ids_from(self, start: int) -> None:
        """Access point ids count up from ``start`` (which of two comes first, on cue)."""
        self._ids = itertools.count(start)

    def add_file_system(self, file_system: FileSystem) -> None:
        self.file_systems[file_system.file_system_id] = file_system

    def add_existing(self, request: AccessPointRequest) -> AccessPoint:
        """An access point made by someone else (another controller, a previous run)."""
        access_point = AccessPoint(
            access_point_id=f"fsap-{next(self._ids):08x}{'0' * 9}",
            file_system_id=request.file_system_id, root_path=request.root_path,
            posix_user=request.posix_user, creation_info=request.creation_info,
            client_token=request.client_token, tags=dict(request.tags))
        self.access_points_by_id[access_point.access_point_id] = access_point
        return access_point

    async def cloud_for(self, role_arn: str | None,
                        external_id: str | None = None) -> FakeCloud:
        """``efs_csi.cloud.Clouds``: every role's EFS API is this one (the roles asked are
        recorded)."""
        if role_arn is not None:
            self.roles_asked.append((role_arn, external_id))
        return self

    def _require_fs(self, file_system_id: str) -> None:
        if file_system_id not in self.file_systems:
            raise NotFound(f"file system {file_system_id} not found")

    async def describe_file_system(self, file_system_id: str) -> FileSystem:
        self.calls["DescribeFileSystems"] += 1
        self._require_fs(file_system_id)
        return self.file_systems[file_system_id]

    async def access_points(self, file_system_id: str) -> AsyncIterator[AccessPoint]:
        self._require_fs(file_system_id)
        matching = [ap for ap in self.access_points_by_id.values()
                    if ap.file_system_id == file_system_id]
        for start in range(0, max(len(matching), 1), self.page_size):
            self.calls["DescribeAccessPoints"] += 1
            await asyncio.sleep(0)
            for access_point in matching[start:start + self.page_size]:
                yield access_point

    async def describe_access_point(self, access_point_id: str) -> AccessPoint:
        self.calls["DescribeAccessPoints"] += 1
        if access_point_id not in self.access_points_by_id:
            raise NotFound(f"access point {access_point_id} not found")
        return self.access_points_by_id[access_point_id]

    async def create_access_point(self, request: AccessPointRequest) -> AccessPoint:
        self.calls["CreateAccessPoint"] += 1
        if self.gate is not None:
            await self.gate.wait()
        self._require_fs(request.file_system_id)
        if self.fail_creates:
            self.fail_creates -= 1
            raise Internal("injected failure")
        for existing in (self.access_points_by_id.values() if self.honours_client_tokens
                         else ()):
            # Client tokens are unique per account and region, not per file system.
            if existing.client_token == request.client_token:
                same = (existing.file_system_id == request.file_system_id
                        and existing.root_path == request.root_path
                        and existing.posix_user == request.posix_user)
                if same:
                    return existing
                message = (f"access point {existing.access_point_id} already exists with "
                           "this client token")
                if self.name_conflicts:
                    raise AccessPointAlreadyExistsError(
                        message, access_point_id=existing.access_point_id)
                raise AlreadyExists(message)
        return self.add_existing(request)

    async def delete_access_point(self, access_point_id: str) -> None:
        self.calls["DeleteAccessPoint"] += 1
        if self.access_points_by_id.pop(access_point_id, None) is None:
            raise NotFound(f"access point {access_point_id} not found")

    async def mount_targets(self, file_system_id: str) -> list[MountTarget]:
        self.calls["DescribeMountTargets"] += 1
        self._require_fs(file_system_id)
        return list(self.mount_targets_by_fs.get(file_system_id, []))

    def with_root(self, access_point_id: str, root_path: str) -> None:
        """Change an access point's root (to set up guard scenarios)."""
        current = self.access_points_by_id[access_point_id]
        self.access_points_by_id[access_point_id] = replace(current, root_path=root_path)


class RecordingObserver:
    """An ``efs_csi.cloud.ApiObserver`` that records what the adapter reports (the metrics
    observer's stand-in, so tests read the calls directly)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, str | None]] = []
        self.throttled: list[str | None] = []  # the codes of the calls reported throttled
        self.retries: list[tuple[str, str]] = []

    def observe_call(self, operation: str, seconds: float, error_code: str | None, *,
                     throttled: bool) -> None:
        self.calls.append((operation, seconds, error_code))
        if throttled:
            self.throttled.append(error_code)

    def observe_retry(self, operation: str, reason: str) -> None:
        self.retries.append((operation, reason))
