"""Read a running metrics endpoint over real HTTP into {(sample name, labels): value}."""

from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from efs_csi.rpc.identity import Readiness

# The ``metrics_server`` fixture (tests/support/fixtures/metrics.py): a registry, the port its
# real endpoint listens on (loopback), and the readiness /healthz follows.
MetricsServer = tuple[CollectorRegistry, int, Readiness]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def healthz(port: int, timeout: float = 30.0) -> int:
    """The status of /healthz, once the endpoint listens: a binary starts it after its CSI
    socket serves (so Probe can answer ready a moment before it does)."""
    async with asyncio.timeout(timeout), aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    return response.status
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.02)


async def scrape(port: int) -> Samples:
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value, 0 when the series does not exist yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)
