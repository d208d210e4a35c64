"""How a binary serves: its ``ServingConfig``, the serving composition both binaries share
(``serve_binary``: Identity, the binary's service, the metrics endpoint, ``serve``), and ``run``,
which turns an endpoint it cannot serve on into a usage error.

Each binary's composition root (``app``) calls ``serve_binary``; its ``__main__`` builds the
``ServingConfig`` from the flags (``efs_csi.cli.serving_config``) and calls ``run``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from efs_csi.metrics import MetricsEndpoint, RpcMetrics
from efs_csi.rpc.hook import ServiceBase
from efs_csi.rpc.identity import IdentityService, Readiness
from efs_csi.rpc.server import BackgroundTask, Endpoint, EndpointUnusable, ServeOptions, serve


@dataclass(frozen=True)
class ServingConfig:
    """How a binary serves: the flags of ``efs_csi.cli.base_parser`` (logging is configured
    apart)."""

    endpoint: Endpoint
    http_endpoint: tuple[str, int] | None = None
    shutdown_grace_period: float = 30.0


def run(main: Coroutine[Any, Any, None], prog: str) -> int:
    """Run a binary's main coroutine; an endpoint it cannot serve on is a usage error: one
    line naming it on stderr and exit status 2, like a bad flag, not a traceback."""
    try:
        asyncio.run(main)
    except EndpointUnusable as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


async def serve_binary(service: ServiceBase, serving: ServingConfig, *, controller: bool,
                       registry: CollectorRegistry,
                       background: Sequence[BackgroundTask] = (),
                       health_notes: Callable[[], Sequence[str]] = tuple) -> None:
    """Serve Identity and a binary's ``service`` until SIGTERM, with the metrics endpoint when
    ``serving`` asks for one. Probe answers ready as soon as the socket listens: a binary's
    start-up work runs after that, among its ``background`` tasks, and the calls that need its
    result wait for it (so neither Kubernetes nor instance metadata ever delays serving)."""
    readiness = Readiness()
    tasks = list(background)
    if serving.http_endpoint is not None:
        host, port = serving.http_endpoint
        tasks.append(MetricsEndpoint(registry, host, port, healthy=lambda: readiness.ready,
                                     notes=health_notes).run)

    async def ready() -> None:
        readiness.set_ready()

    await serve([IdentityService(readiness, controller=controller), service], serving.endpoint,
                options=ServeOptions(grace_period=serving.shutdown_grace_period,
                                     observer=RpcMetrics(registry)),
                startup=ready, background=tasks)
