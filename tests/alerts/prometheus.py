"""A real Prometheus (Debian's) for a test: started on loopback with a scrape configuration and
rule files, asked through its HTTP API, stopped by its pid.

It scrapes and evaluates every second (``INTERVAL``): the rules it loads are the chart's with
their durations scaled to match (tests/alerts/rules.py). Its data goes to a directory of the
test's; it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.alerts.rules import RuleGroups, prometheus, write_rule_file

INTERVAL = "1s"
Labels = Mapping[str, str]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Alert:
    name: str
    state: str  # pending | firing
    labels: dict[str, str]
    annotations: dict[str, str]

    def matches(self, name: str, labels: Labels) -> bool:
        return self.name == name and all(self.labels.get(k) == v for k, v in labels.items())


class Prometheus:
    def __init__(self, process: asyncio.subprocess.Process, url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def api(self, path: str, **params: str) -> Any:
        async with self._session.get(f"{self.url}/api/v1/{path}", params=params) as response:
            body = await response.json()
        assert body.get("status") == "success", body
        return body["data"]

    async def alerts(self) -> list[Alert]:
        """Active alerts (pending or firing) from /api/v1/alerts."""
        data = await self.api("alerts")
        return [Alert(a["labels"]["alertname"], a["state"], dict(a["labels"]),
                      dict(a.get("annotations", {}))) for a in data["alerts"]]

    async def rule_states(self) -> dict[str, str]:
        """Alerting rule -> inactive | pending | firing, from /api/v1/rules."""
        data = await self.api("rules", type="alert")
        return {rule["name"]: rule["state"] for group in data["groups"]
                for rule in group["rules"]}

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def targets_up(self) -> dict[str, str]:
        """scrape URL -> health (up | down | unknown)."""
        data = await self.api("targets", state="active")
        return {target["scrapeUrl"]: target["health"] for target in data["activeTargets"]}

    async def close(self) -> None:
        await self._session.close()


def finite(series: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any series of an instant query has a number (not NaN, not ±Inf)."""
    return any(math.isfinite(float(item["value"][1])) for item in series)


def configuration(jobs: Mapping[str, Sequence[str]], rule_file: Path) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": INTERVAL, "scrape_timeout": INTERVAL,
                   "evaluation_interval": INTERVAL},
        "rule_files": [str(rule_file)],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}
                           for job, targets in jobs.items()],
    }


@contextlib.asynccontextmanager
async def running_prometheus(directory: Path, jobs: Mapping[str, Sequence[str]],
                             groups: RuleGroups) -> AsyncIterator[Prometheus]:
    """Prometheus scraping ``jobs`` (job name -> host:port targets) and evaluating
    ``groups``; stopped (SIGTERM, then SIGKILL) by its pid on the way out."""
    directory.mkdir(parents=True, exist_ok=True)
    rules = write_rule_file(groups, directory / "rules.yaml")
    config = directory / "prometheus.yml"
    config.write_text(yaml.safe_dump(configuration(jobs, rules)))
    port = free_port()
    log = directory / "prometheus.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            prometheus(), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={directory / 'data'}", "--log.level=warn",
            stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=asyncio.subprocess.STDOUT)
    server = Prometheus(process, f"http://127.0.0.1:{port}", log)
    try:
        async with asyncio.timeout(60):
            while not await _ready(server):
                if process.returncode is not None:
                    raise RuntimeError(f"prometheus exited {process.returncode}: "
                                       f"{log.read_text(errors='replace')[-3000:]}")
                await asyncio.sleep(0.1)
        yield server
    finally:
        await server.close()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _ready(server: Prometheus) -> bool:
    try:
        async with server._session.get(f"{server.url}/-/ready") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False
