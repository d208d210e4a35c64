"""Where the node's zone comes from: instance metadata, and the Node object's zone label.

``--availability-zone`` comes first (``efs_csi_node.zone``); then:

1. the EC2 instance metadata service, IMDSv2 (a PUT for a session token, then a GET of
   ``placement/availability-zone``), bounded by one short total timeout so a node outside EC2
   (kind, on-premises) starts without noticeable delay. The endpoint and opt-out follow the AWS
   SDKs: ``AWS_EC2_METADATA_SERVICE_ENDPOINT``, ``AWS_EC2_METADATA_DISABLED=true``. Like the
   SDKs, when the token call answers 403/404/405 (IMDSv1-only service) the GET is made without
   a token. The node asks it itself, as soon as it serves;
2. the Node object's zone label (``zone_label``), read by the start-up helper process
   (``efs_csi_node.startup_work``), which has the Kubernetes client.

Instance metadata is two small plain-HTTP requests on a link-local address, so they are made
with asyncio's own streams (cancellable, bounded by ``asyncio.timeout``) and answers parsed by
the standard library's ``http.client``, which the node has loaded anyway: no HTTP client library
(aiohttp would cost the long-lived node ~10 MiB and 0.2 s), and no child process, so the zone is
known a few milliseconds after the node serves, whatever becomes of the helper.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from efs_csi.contract import TOPOLOGY_ZONE_KEY
from efs_csi.kube import NodeInfo
from efs_csi.logging import get_logger

LEGACY_ZONE_LABEL = "failure-domain.beta.kubernetes.io/zone"
DEFAULT_IMDS_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL_SECONDS = 60
_TOKEN_PATH = "/latest/api/token"
_ZONE_PATH = "/latest/meta-data/placement/availability-zone"
# Answers to the token call meaning "this service only speaks IMDSv1" (as the AWS SDKs read them).
_NO_TOKEN_STATUSES = frozenset({403, 404, 405})
_ZONE = re.compile(r"^[a-z0-9-]{1,64}$")
# IMDS answers are a few bytes; anything longer is not an answer we want.
_MAX_ANSWER_BYTES = 64 * 1024

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
    """IMDS answered, but not with a zone (or could not be asked at all)."""


class _Answer(io.BytesIO):
    """A received answer posing as the socket ``http.client.HTTPResponse`` reads from."""

    def makefile(self, mode: str) -> io.BytesIO:
        return self


def parse_answer(raw: bytes) -> tuple[int, str]:
    """(status, body) of a whole HTTP/1.1 answer (pure: chunked or sized bodies alike)."""
    response = http.client.HTTPResponse(_Answer(raw))  # type: ignore[arg-type]
    try:
        response.begin()
        return response.status, response.read().decode("utf-8", errors="replace")
    except (http.client.HTTPException, ValueError) as exc:
        raise _NoAnswer(f"not an HTTP answer: {type(exc).__name__}") from None


def _where(endpoint: str) -> tuple[str, int, str]:
    """(host, port, Host header) of an ``http://`` endpoint."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme != "http" or not parts.hostname:
        raise _NoAnswer(f"endpoint {endpoint!r} is not an http:// URL")
    try:
        port = parts.port or 80
    except ValueError:
        raise _NoAnswer(f"endpoint {endpoint!r} has an invalid port") from None
    return parts.hostname, port, parts.netloc


async def _ask(endpoint: str, method: str, path: str,
               headers: Mapping[str, str]) -> tuple[int, str]:
    """One request on a connection of its own (``Connection: close``): the answer is
    everything until the server closes it."""
    host, port, host_header = _where(endpoint)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header}", "Connection: close",
                 "Content-Length: 0", *(f"{name}: {value}" for name, value in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        raw = b""
        while chunk := await reader.read(_MAX_ANSWER_BYTES):
            raw += chunk
            if len(raw) > _MAX_ANSWER_BYTES:
                raise _NoAnswer(f"{path} answered more than {_MAX_ANSWER_BYTES} bytes")
    finally:
        writer.close()
    return parse_answer(raw)


async def _token(endpoint: str) -> str | None:
    status, body = await _ask(endpoint, "PUT", _TOKEN_PATH,
                              {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)})
    if status in _NO_TOKEN_STATUSES:
        return None
    if status != 200:
        raise _NoAnswer(f"token request answered HTTP {status}")
    return body.strip()


async def _zone(endpoint: str, token: str | None) -> str:
    headers = {"X-aws-ec2-metadata-token": token} if token else {}
    status, body = await _ask(endpoint, "GET", _ZONE_PATH, headers)
    if status != 200:
        raise _NoAnswer(f"availability-zone answered HTTP {status}")
    zone = body.strip()
    if not _ZONE.match(zone):
        raise _NoAnswer(f"availability-zone answered an invalid zone {zone[:80]!r}")
    return zone


async def zone_from_imds(settings: ImdsSettings) -> str | None:
    """The zone IMDS reports, or None when it is disabled, absent, slow or unhelpful."""
    if settings.disabled:
        return None
    try:
        async with asyncio.timeout(settings.timeout):
            token = await _token(settings.endpoint)
            return await _zone(settings.endpoint, token)
    except TimeoutError:
        _log.info("instance metadata did not answer in time", endpoint=settings.endpoint,
                  timeout_s=settings.timeout)
    except (OSError, _NoAnswer) as exc:
        _log.info("instance metadata gave no zone", endpoint=settings.endpoint,
                  error=str(exc) or type(exc).__name__)
    return None


def zone_label(node: NodeInfo) -> str | None:
    """The zone a Node object's labels name (the current label, then the legacy one)."""
    return node.labels.get(TOPOLOGY_ZONE_KEY) or node.labels.get(LEGACY_ZONE_LABEL) or None
