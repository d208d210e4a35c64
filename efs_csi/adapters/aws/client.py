"""How the driver's botocore clients are configured and made, and where the region comes from.

Cost per call: a client sends a fixed User-Agent (botocore otherwise rebuilds its string twice
per request) and skips botocore's parameter validation (the provisioner checks what it sends;
EFS answers BadRequest, i.e. INVALID_ARGUMENT, to anything else). botocore's own retries are
off for EFS (one attempt per botocore call): ``efs_csi.adapters.aws.cloud`` retries per API.

Endpoints: an explicit ``endpoint_url`` wins; otherwise botocore itself honours
``AWS_ENDPOINT_URL_EFS`` / ``AWS_ENDPOINT_URL_STS`` and ``AWS_ENDPOINT_URL`` (that is how the
tests and the demo point the driver at a local EFS API).

Memory: botocore's endpoints data (``botocore/data/endpoints.json``, 1.2 MB, every service of
every partition) is parsed by the legacy endpoint resolver of each session, which still gives a
client its signing region and credential scope; kept whole (as ordered dicts) it held ~6.5 MiB
of the controller's idle RSS. ``LeanEndpointsFileLoader`` keeps, of botocore's own copy, the
partitions and only the entries of ``ENDPOINT_SERVICES``: every other service's entry is parsed
and dropped one at a time (so the freed objects do not leave the heap fragmented), and nothing
else botocore loads changes. A copy of its own (``AWS_DATA_PATH``) is loaded whole, as botocore
would.

Every client is made by ``new_client``, the one place to tune how botocore builds them.
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import aiobotocore
import botocore
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from aiobotocore.utils import AioInstanceMetadataRegionFetcher
from botocore.loaders import JSONFileLoader, Loader

from efs_csi import errors
from efs_csi._version import __version__
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


#: The services whose entries of the endpoints data a session of the driver can need: EFS (by its
#: endpoint prefix), STS (assumed roles, web identity), and the clients botocore's credential and
#: token providers make (SSO, SSO-OIDC, sign-in). Another service would resolve from its
#: partition's defaults, as one that botocore's data does not list.
ENDPOINT_SERVICES = frozenset({"elasticfilesystem", "sts", "sso", "sso-oidc", "signin"})
#: botocore's own endpoints data, as its loader names it (without the extension).
BUILTIN_ENDPOINTS = os.path.join(Loader.BUILTIN_DATA_PATH, "endpoints")

_SPACE = re.compile(r"[ \t\n\r]*")
_KEPT = json.JSONDecoder(object_pairs_hook=OrderedDict)  # as botocore's loader parses
_DROPPED = json.JSONDecoder()
#: Parses the member ``key`` whose value starts at an offset: (keep it?, its value, its end).
_Member = Callable[[str, str, int], tuple[bool, Any, int]]


def _space(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match else at


def _expect(text: str, at: int, char: str) -> None:
    if text[at:at + 1] != char:
        raise ValueError(f"endpoints data: {char!r} expected at {at}")


def _object(text: str, at: int, member: _Member) -> tuple[OrderedDict[str, Any], int]:
    """The JSON object at ``at`` (its members parsed by ``member``) and where it ends."""
    _expect(text, at, "{")
    result: OrderedDict[str, Any] = OrderedDict()
    at = _space(text, at + 1)
    if text[at:at + 1] == "}":
        return result, at + 1
    while True:
        _expect(text, at, '"')
        key, at = _DROPPED.raw_decode(text, at)
        at = _space(text, at)
        _expect(text, at, ":")
        keep, value, at = member(key, text, _space(text, at + 1))
        if keep:
            result[key] = value
        at = _space(text, at)
        if text[at:at + 1] == "}":
            return result, at + 1
        _expect(text, at, ",")
        at = _space(text, at + 1)


def _array(text: str, at: int, member: _Member) -> tuple[list[Any], int]:
    _expect(text, at, "[")
    result: list[Any] = []
    at = _space(text, at + 1)
    if text[at:at + 1] == "]":
        return result, at + 1
    while True:
        _, value, at = member("", text, at)
        result.append(value)
        at = _space(text, at)
        if text[at:at + 1] == "]":
            return result, at + 1
        _expect(text, at, ",")
        at = _space(text, at + 1)


def _whole(key: str, text: str, at: int) -> tuple[bool, Any, int]:
    value, end = _KEPT.raw_decode(text, at)
    return True, value, end


def _service(key: str, text: str, at: int) -> tuple[bool, Any, int]:
    if key in ENDPOINT_SERVICES:
        return _whole(key, text, at)
    _, end = _DROPPED.raw_decode(text, at)  # parsed and freed at once
    return False, None, end


def _partition_member(key: str, text: str, at: int) -> tuple[bool, Any, int]:
    if key == "services":
        return (True, *_object(text, at, _service))
    return _whole(key, text, at)


def _partition(key: str, text: str, at: int) -> tuple[bool, Any, int]:
    return (True, *_object(text, at, _partition_member))


def _top_member(key: str, text: str, at: int) -> tuple[bool, Any, int]:
    if key == "partitions":
        return (True, *_array(text, at, _partition))
    return _whole(key, text, at)


def lean_endpoints(text: str) -> OrderedDict[str, Any]:
    """The endpoints data ``text`` with only ``ENDPOINT_SERVICES`` in each partition's services
    (ValueError when it is not shaped as botocore's endpoints data)."""
    data, end = _object(text, _space(text, 0), _top_member)
    if _space(text, end) != len(text) or not isinstance(data.get("partitions"), list):
        raise ValueError("endpoints data: not a partitions document")
    return data


class LeanEndpointsFileLoader(JSONFileLoader):  # type: ignore[misc]  # botocore is untyped
    """botocore's JSON file loader, except that botocore's own endpoints data keeps only the
    services the driver's clients use (the module docstring)."""

    def load_file(self, file_path: str) -> Any:
        if file_path != BUILTIN_ENDPOINTS or not os.path.isfile(file_path + ".json"):
            return super().load_file(file_path)
        with open(file_path + ".json", "rb") as stream:
            text = stream.read().decode("utf-8")
        try:
            return lean_endpoints(text)
        except (ValueError, IndexError):  # a layout botocore has not used so far: all of it
            return super().load_file(file_path)


def lean_data_loader(session: AioSession) -> None:
    """Make ``session`` load botocore's endpoints data through ``LeanEndpointsFileLoader``
    (before its first client: the endpoint resolver is built once per session)."""
    loader = session.get_component("data_loader")
    if not isinstance(loader.file_loader, LeanEndpointsFileLoader):
        loader.file_loader = LeanEndpointsFileLoader()


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
