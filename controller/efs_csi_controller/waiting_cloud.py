"""The controller's ``Clouds`` from its first second: each request waits for the AWS client.

The controller serves (and Probe answers ready) before its AWS client exists: importing the
SDK and building the client take longer than the rest of start-up together, and nothing but an
EFS call needs them. ``WaitingClouds`` stands in from the start: ``cloud_for`` waits until the
composition root has either ``provide``d the real clouds (``efs_csi.adapters.aws.CloudFactory``)
or ``fail``ed them, saying why there are none, then answers from them. A request that cannot
wait that long (its caller's deadline, ``time_left``) is answered UNAVAILABLE, saying so,
shortly before that deadline.

Without a region the process still starts and serves Identity (so a misconfigured Deployment is
visible through its logs and the CSI calls' errors instead of a crash loop): every EFS-backed
RPC answers FAILED_PRECONDITION naming the fix (``NO_REGION``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from efs_csi.cloud import Cloud, Clouds
from efs_csi.errors import FailedPrecondition, Unavailable

#: Seconds until the current caller's deadline, or None (``efs_csi.rpc.hook.seconds_left``).
TimeLeft = Callable[[], float | None]
#: A request stops waiting this long before its deadline, so that its answer reaches the caller.
ANSWER_MARGIN = 0.5
NO_REGION = "no AWS region configured: start the controller with --region or set AWS_REGION"


def _no_deadline() -> float | None:
    return None


class WaitingClouds:
    """``Clouds`` that wait for ``provide`` (or ``fail``), then are the provided ones."""

    def __init__(self, time_left: TimeLeft = _no_deadline) -> None:
        self._time_left = time_left
        self._settled = asyncio.Event()
        self._clouds: Clouds | None = None
        self._failure = ""

    @property
    def provided(self) -> bool:
        return self._settled.is_set()

    def provide(self, clouds: Clouds) -> None:
        self._clouds, self._failure = clouds, ""
        self._settled.set()

    def fail(self, message: str) -> None:
        """There will be no clouds: every request is answered FAILED_PRECONDITION(message)."""
        self._clouds, self._failure = None, message
        self._settled.set()

    def withdraw(self) -> None:
        """The clients are closing (the controller stops): requests wait again."""
        self._settled.clear()
        self._clouds, self._failure = None, ""

    async def cloud_for(self, role_arn: str | None, external_id: str | None = None) -> Cloud:
        while not self._settled.is_set():  # (again, were they withdrawn meanwhile)
            await self._wait()
        if self._clouds is None:
            raise FailedPrecondition(self._failure)
        return await self._clouds.cloud_for(role_arn, external_id)

    async def _wait(self) -> None:
        left = self._time_left()
        if left is None:
            await self._settled.wait()
            return
        try:
            async with asyncio.timeout(max(0.0, left - ANSWER_MARGIN)):
                await self._settled.wait()
        except TimeoutError:
            raise Unavailable("the controller's EFS API client is not ready yet (it is built "
                              "once the controller serves); retry") from None
