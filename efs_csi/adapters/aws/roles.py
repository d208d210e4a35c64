"""``CloudFactory``: the process's AWS session, its default cloud, and one cloud per assumed role.

Cross-account volumes act under an IAM role of the other account (the secrets' ``awsRoleArn``,
with an optional ``externalId``): one cloud per (role ARN, external id), whose credentials come
from STS AssumeRole and are refreshed by botocore shortly before they expire. This is the one
cache of those clouds (the use cases ask ``cloud_for`` every time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession

from efs_csi import errors
from efs_csi.adapters.aws.client import client_config, new_client, retry_settings
from efs_csi.adapters.aws.cloud import AwsCloud, TimeLeft, no_deadline
from efs_csi.adapters.aws.errors import is_throttle, translate
from efs_csi.cloud import ApiObserver


class CloudFactory:
    """The process's AWS session: the default cloud plus one cloud per assumed role (the real
    ``efs_csi.cloud.Clouds``).

    Assumed-role credentials are cached per (role ARN, external id); botocore refreshes them
    through STS ``refresh_margin`` seconds before they expire, so a role costs one STS call per
    credential lifetime, not one per request.
    """

    def __init__(self, region: str | None, *, adaptive_retry: bool = True,
                 max_attempts: int = 10, endpoint_url: str | None = None,
                 observer: ApiObserver | None = None, page_size: int = 1000,
                 max_pool_connections: int = 64, role_session_name: str = "efs-csi-controller",
                 role_duration_seconds: int = 3600, refresh_margin_seconds: int = 900,
                 time_left: TimeLeft = no_deadline) -> None:
        self._region = region
        self._time_left = time_left
        self._config = client_config(region, max_pool_connections=max_pool_connections)
        self._retry_settings = retry_settings(adaptive_retry=adaptive_retry,
                                              max_attempts=max_attempts)
        self._endpoint_url = endpoint_url
        self._observer = observer
        self._page_size = page_size
        self._role_session_name = role_session_name
        self._role_duration = role_duration_seconds
        self._refresh_margin = refresh_margin_seconds
        self._session = AioSession()
        self._stack = AsyncExitStack()
        self._default: AwsCloud | None = None
        self._sts: Any = None
        self._assumed: dict[tuple[str, str], AwsCloud] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._sts_lock = asyncio.Lock()

    async def open(self) -> None:
        if self._default is None:
            cloud = AwsCloud(self._session, self._config, endpoint_url=self._endpoint_url,
                             observer=self._observer, page_size=self._page_size,
                             retries=self._retry_settings, time_left=self._time_left)
            await cloud.open()
            self._stack.push_async_callback(cloud.close)
            self._default = cloud

    async def close(self) -> None:
        self._default = None
        self._sts = None
        self._assumed.clear()
        await self._stack.aclose()

    async def __aenter__(self) -> CloudFactory:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def default(self) -> AwsCloud:
        """The cloud of the controller's own credentials."""
        if self._default is None:
            raise errors.Internal("CloudFactory used before open()")
        return self._default

    async def cloud_for(self, role_arn: str | None, external_id: str | None = None) -> AwsCloud:
        """The cloud acting as ``role_arn`` (the default cloud when no role is given)."""
        if not role_arn:
            return self.default
        key = (role_arn, external_id or "")
        known = self._assumed.get(key)
        if known is not None:  # every request of a cross-account volume asks
            return known
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._assumed.get(key)
            if cached is not None:
                return cached
            refresh = self._refresher(role_arn, external_id)
            credentials = AioRefreshableCredentials.create_from_metadata(
                metadata=await refresh(), refresh_using=refresh, method="sts-assume-role",
                advisory_timeout=self._refresh_margin,
                mandatory_timeout=max(1, self._refresh_margin * 2 // 3))
            session = AioSession()
            # botocore has no public setter for refreshable credentials on a session.
            session._credentials = credentials
            cloud = AwsCloud(session, self._config, endpoint_url=self._endpoint_url,
                             observer=self._observer, page_size=self._page_size,
                             retries=self._retry_settings, time_left=self._time_left)
            await cloud.open()
            self._stack.push_async_callback(cloud.close)
            self._assumed[key] = cloud
            return cloud

    def _refresher(self, role_arn: str, external_id: str | None
                   ) -> Callable[[], Awaitable[dict[str, str]]]:
        async def assume() -> dict[str, str]:
            sts = await self._sts_client()
            args: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": self._role_session_name,
                                    "DurationSeconds": self._role_duration}
            if external_id:
                args["ExternalId"] = external_id
            started = time.monotonic()
            code: str | None = None
            try:
                reply = await sts.assume_role(**args)
            except Exception as exc:  # translated like every other AWS failure
                # The role's ARN names the other account: the log has it, the CO gets an id.
                failure = translate("AssumeRole", exc, role_arn=role_arn)
                code = failure.code
                raise failure.exception() from exc
            finally:
                if self._observer is not None:
                    self._observer.observe_call("AssumeRole", time.monotonic() - started, code,
                                                throttled=is_throttle(code))
            creds = reply["Credentials"]
            expiry = creds["Expiration"]
            return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                    "token": creds["SessionToken"],
                    "expiry_time": expiry.isoformat() if isinstance(expiry, datetime)
                    else str(expiry)}
        return assume

    async def _sts_client(self) -> Any:
        async with self._sts_lock:
            if self._sts is None:
                # STS is called once per credential lifetime: botocore's own retries do.
                config = self._config.merge(AioConfig(retries={"mode": "standard",
                                                               "total_max_attempts": 3}))
                self._sts = await new_client(self._stack, self._session, "sts", config,
                                             self._endpoint_url)
            return self._sts
