"""The node's availability zone, reported as the ``topology.kubernetes.io/zone`` segment.

Sources, first answer wins:
1. ``--availability-zone``;
2. the EC2 instance metadata service, IMDSv2 (a PUT for a session token, then a GET of
   ``placement/availability-zone``), bounded by one short total timeout so a node outside EC2
   (kind, on-premises) starts without noticeable delay. The endpoint and opt-out follow the AWS
   SDKs: ``AWS_EC2_METADATA_SERVICE_ENDPOINT``, ``AWS_EC2_METADATA_DISABLED=true``. Like the
   SDKs, when the token call answers 403/404/405 (IMDSv1-only service) the GET is made without
   a token;
3. the Node object's zone label, through the ``Kube`` protocol.
No answer means no topology (``None``); it is never an error that stops the node.

The lookups run in the node's start-up helper process (``efs_csi_node.startup_work``), after
serving begins; aiohttp is imported there, on first use, never by the long-lived node process.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from efs_csi.contract import TOPOLOGY_ZONE_KEY
from efs_csi.kube import Kube
from efs_csi.logging import get_logger

LEGACY_ZONE_LABEL = "failure-domain.beta.kubernetes.io/zone"
DEFAULT_IMDS_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL_SECONDS = 60
_TOKEN_PATH = "/latest/api/token"
_ZONE_PATH = "/latest/meta-data/placement/availability-zone"
# Answers to the token call meaning "this service only speaks IMDSv1" (as the AWS SDKs read them).
_NO_TOKEN_STATUSES = frozenset({403, 404, 405})
_ZONE = re.compile(r"^[a-z0-9-]{1,64}$")

if TYPE_CHECKING:
    import aiohttp

_log = get_logger("node.topology")


@dataclass(frozen=True)
class ImdsSettings:
    endpoint: str = DEFAULT_IMDS_ENDPOINT
    disabled: bool = False
    timeout: float = 1.5  # seconds, for the token and the zone together

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], *,
                         timeout: float = 1.5) -> ImdsSettings:
        endpoint = environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or DEFAULT_IMDS_ENDPOINT
        disabled = environ.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() == "true"
        return cls(endpoint=endpoint.rstrip("/"), disabled=disabled, timeout=timeout)


class _NoAnswer(Exception):
    """IMDS answered, but not with a zone."""


async def _token(session: aiohttp.ClientSession, endpoint: str) -> str | None:
    async with session.put(endpoint + _TOKEN_PATH, headers={
            "X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)}) as reply:
        if reply.status in _NO_TOKEN_STATUSES:
            return None
        if reply.status != 200:
            raise _NoAnswer(f"token request answered HTTP {reply.status}")
        return (await reply.text()).strip()


async def _zone(session: aiohttp.ClientSession, endpoint: str, token: str | None) -> str:
    headers = {"X-aws-ec2-metadata-token": token} if token else {}
    async with session.get(endpoint + _ZONE_PATH, headers=headers) as reply:
        if reply.status != 200:
            raise _NoAnswer(f"availability-zone answered HTTP {reply.status}")
        zone = (await reply.text()).strip()
    if not _ZONE.match(zone):
        raise _NoAnswer(f"availability-zone answered an invalid zone {zone[:80]!r}")
    return zone


async def zone_from_imds(settings: ImdsSettings) -> str | None:
    """The zone IMDS reports, or None when it is disabled, absent, slow or unhelpful."""
    if settings.disabled:
        return None
    import aiohttp  # deferred: only the start-up helper asks instance metadata

    # trust_env=False: a cluster-wide HTTP proxy must never see metadata requests.
    try:
        async with asyncio.timeout(settings.timeout), aiohttp.ClientSession(
                trust_env=False) as session:
            token = await _token(session, settings.endpoint)
            return await _zone(session, settings.endpoint, token)
    except TimeoutError:
        _log.info("instance metadata did not answer in time", endpoint=settings.endpoint,
                  timeout_s=settings.timeout)
    except (aiohttp.ClientError, _NoAnswer) as exc:
        _log.info("instance metadata gave no zone", endpoint=settings.endpoint, error=str(exc))
    return None


async def zone_from_node_labels(kube: Kube, node_name: str) -> str | None:
    try:
        node = await kube.get_node(node_name)
    except Exception as exc:  # any API failure just means "no zone from here"
        _log.warning("could not read the Node's zone label", node=node_name,
                     error=f"{type(exc).__name__}: {exc}")
        return None
    return node.labels.get(TOPOLOGY_ZONE_KEY) or node.labels.get(LEGACY_ZONE_LABEL) or None


async def resolve_zone(*, configured: str | None, node_name: str, imds: ImdsSettings,
                       kube: Kube | None) -> str | None:
    """Walk the sources of the module docstring in order; None when none knows the zone."""
    if configured:
        return configured
    zone = await zone_from_imds(imds)
    source = "instance metadata"
    if zone is None and kube is not None:
        zone = await zone_from_node_labels(kube, node_name)
        source = "node label"
    if zone is None:
        _log.warning("availability zone unknown; reporting no topology", node=node_name)
    else:
        _log.info("availability zone resolved", zone=zone, source=source)
    return zone
