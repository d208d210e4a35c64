"""The EFS API as the use cases see it while the controller is still building its client.

The controller serves (and Probe answers ready) before its AWS client exists: importing the
SDK and building the client take longer than the rest of start-up together, and nothing but an
EFS call needs them. ``DeferredClouds`` stands in from the start: each call waits until the
composition root has ``provide``d the real clouds (or a cloud that explains why there is none),
then goes to it. A call that cannot wait that long (its caller's deadline, ``time_left``) is
answered UNAVAILABLE, saying so, shortly before that deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from efs_csi.cloud import AccessPoint, AccessPointRequest, Cloud, FileSystem, MountTarget
from efs_csi.errors import Unavailable
from efs_csi_controller.cross_account import CloudForRole

#: Seconds until the current caller's deadline, or None (``efs_csi.rpc.hook.seconds_left``).
TimeLeft = Callable[[], float | None]
#: A call stops waiting this long before its deadline, so that its answer reaches the caller.
ANSWER_MARGIN = 0.5


def _no_deadline() -> float | None:
    return None


class DeferredClouds:
    """The default cloud (``cloud``, a ``Cloud``) and the per-role factory (``for_role``),
    both waiting for ``provide``."""

    def __init__(self, time_left: TimeLeft = _no_deadline) -> None:
        self._time_left = time_left
        self._provided = asyncio.Event()
        self._default: Cloud | None = None
        self._for_role: CloudForRole | None = None
        self.cloud = _WaitingCloud(self)

    @property
    def provided(self) -> bool:
        return self._provided.is_set()

    def provide(self, default: Cloud, for_role: CloudForRole | None) -> None:
        self._default, self._for_role = default, for_role
        self._provided.set()

    def withdraw(self) -> None:
        """The clients are closing (the controller stops): calls wait again."""
        self._provided.clear()
        self._default = self._for_role = None

    async def _ready(self) -> None:
        if self._provided.is_set():
            return
        left = self._time_left()
        if left is None:
            await self._provided.wait()
            return
        try:
            async with asyncio.timeout(max(0.0, left - ANSWER_MARGIN)):
                await self._provided.wait()
        except TimeoutError:
            raise Unavailable("the controller's EFS API client is not ready yet (it is built "
                              "once the controller serves); retry") from None

    async def default(self) -> Cloud:
        await self._ready()
        assert self._default is not None
        return self._default

    async def for_role(self, role_arn: str, external_id: str | None) -> Cloud:
        await self._ready()
        if self._for_role is None:  # cannot happen with CloudSelector: it checks first
            return await self.default()
        return await self._for_role(role_arn, external_id)


class _WaitingCloud:
    """A ``Cloud`` whose every call waits for the default cloud, then is that cloud's call."""

    def __init__(self, clouds: DeferredClouds) -> None:
        self._clouds = clouds

    async def describe_file_system(self, file_system_id: str) -> FileSystem:
        return await (await self._clouds.default()).describe_file_system(file_system_id)

    async def access_points(self, file_system_id: str) -> AsyncIterator[AccessPoint]:
        async for access_point in (await self._clouds.default()).access_points(file_system_id):
            yield access_point

    async def describe_access_point(self, access_point_id: str) -> AccessPoint:
        return await (await self._clouds.default()).describe_access_point(access_point_id)

    async def create_access_point(self, request: AccessPointRequest) -> AccessPoint:
        return await (await self._clouds.default()).create_access_point(request)

    async def delete_access_point(self, access_point_id: str) -> None:
        await (await self._clouds.default()).delete_access_point(access_point_id)

    async def mount_targets(self, file_system_id: str) -> list[MountTarget]:
        return await (await self._clouds.default()).mount_targets(file_system_id)
