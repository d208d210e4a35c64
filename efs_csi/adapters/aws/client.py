"""How the driver's botocore clients are configured and made, and where the region comes from.

Cost per call: a client sends a fixed User-Agent (botocore otherwise rebuilds its string twice
per request) and skips botocore's parameter validation (the provisioner checks what it sends;
EFS answers BadRequest, i.e. INVALID_ARGUMENT, to anything else). botocore's own retries are
off for EFS (one attempt per botocore call): ``efs_csi.adapters.aws.cloud`` retries per API.

Endpoints: an explicit ``endpoint_url`` wins; otherwise botocore itself honours
``AWS_ENDPOINT_URL_EFS`` / ``AWS_ENDPOINT_URL_STS`` and ``AWS_ENDPOINT_URL`` (that is how the
tests and the demo point the driver at a local EFS API).

Memory: botocore's endpoints data is loaded with only the driver's services
(``efs_csi.adapters.aws.endpoints_data``).

Every client is made by ``new_client``, the one place to tune how botocore builds them.
"""

from __future__ import annotations

import platform
from contextlib import AsyncExitStack
from typing import Any

import aiobotocore
import botocore
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from aiobotocore.utils import AioInstanceMetadataRegionFetcher

from efs_csi import errors
from efs_csi._version import __version__
from efs_csi.adapters.aws.endpoints_data import lean_data_loader
from efs_csi.adapters.retries import RetrySettings

#: Sent on every request instead of the string botocore rebuilds twice per request.
USER_AGENT = (f"efs-csi/{__version__} aiobotocore/{aiobotocore.__version__} "
              f"botocore/{botocore.__version__} Python/{platform.python_version()}")


def client_config(region: str | None, *, max_pool_connections: int) -> AioConfig:
    """One attempt per botocore call (``AwsCloud`` retries per API), a fixed User-Agent, no
    client-side parameter validation (see the module docstring)."""
    return AioConfig(
        region_name=region,
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max_pool_connections,
        connect_timeout=5,
        read_timeout=30,
        user_agent=USER_AGENT,
        parameter_validation=False,
    )


def retry_settings(*, adaptive_retry: bool, max_attempts: int) -> RetrySettings:
    """``--adaptive-retry-mode``: adaptive adds the per-API client-side rate limiter, which
    keeps retries from storming, so its backoff starts short (0.25 s); standard mode keeps the
    AWS SDKs' one second, its only spread against a rate limit."""
    return RetrySettings(max_attempts=max_attempts, adaptive=adaptive_retry,
                         base_delay=0.25 if adaptive_retry else 1.0)


async def new_client(stack: AsyncExitStack, session: AioSession, service: str,
                     config: AioConfig, endpoint_url: str | None) -> Any:
    """A botocore client of ``service`` ("efs", "sts"), open until ``stack`` closes."""
    lean_data_loader(session)
    return await stack.enter_async_context(
        session.create_client(service, config=config, endpoint_url=endpoint_url))


async def resolve_region(configured: str | None, *, metadata_disabled: bool = False,
                         metadata_url: str | None = None) -> str:
    """The region: ``configured`` (the flag or the environment, as the binary read them), else
    the instance metadata service's (the zone minus its letter) unless ``metadata_disabled``;
    FailedPrecondition if none."""
    if configured:
        return configured
    # The variable botocore's fetcher reads; it never sees the process environment.
    env = {"AWS_EC2_METADATA_DISABLED": "true" if metadata_disabled else "false"}
    options: dict[str, Any] = {"timeout": 2, "num_attempts": 2, "env": env}
    if metadata_url:
        options["base_url"] = metadata_url
    region = await AioInstanceMetadataRegionFetcher(**options).retrieve_region()
    if not region:
        raise errors.FailedPrecondition(
            "no AWS region: pass --region or set AWS_REGION (instance metadata did not answer)")
    return str(region)
