"""What the real-Prometheus flow stands on: file systems that fail for real, and a watcher of
Prometheus' alerts and of the dashboard's queries.

- ``FuseVolume``: a local-backend file system served through ``testbed.slowfs`` (FUSE), slow on
  purpose (every operation delayed, as EFS's round trips) or made stale by killing its server
  (the kernel then answers ENOTCONN for everything under it, as for an NFS mount whose server
  is gone: what the node's stale-mount probe looks for).
- ``Watcher``: polls /api/v1/alerts, remembers every alert that was ever active (pending or
  firing) and when each first fired and was last seen, and runs every dashboard query,
  remembering which returned a number and whether their series carry the legend's labels.
  Waiting is polling with a deadline (a bound that fails the test, not a timing assertion).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.alerts.prometheus import Alert, Labels, Prometheus, finite
from tests.support.ci import REPO

#: How long any one alert may take to fire or to go (a bound, far above what it takes).
DEADLINE_S = 120.0


def _is_mount_point(path: Path) -> bool:
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except OSError as exc:  # a dead FUSE mount answers ENOTCONN: still mounted
        return exc.errno == 107


@dataclass
class FuseVolume:
    """``mountpoint`` (a file system's directory under the node's local root) served from
    ``backing`` through slowfs with ``delay_s`` per operation."""

    backing: Path
    mountpoint: Path
    delay_s: float
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "testbed.slowfs", str(self.backing), str(self.mountpoint),
             "--delay-ms", repr(self.delay_s * 1000), "--threads", "8"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while not _is_mount_point(self.mountpoint):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"slowfs did not mount {self.mountpoint}")
            time.sleep(0.02)

    def kill_server(self) -> None:
        """The server dies: every access under the mount now fails with ENOTCONN."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for _ in range(20):
            if not _is_mount_point(self.mountpoint):
                return
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False,
                           capture_output=True)


@contextlib.contextmanager
def fuse_volumes(*volumes: FuseVolume) -> Iterator[None]:
    try:
        for volume in volumes:
            volume.start()
        yield
    finally:
        for volume in volumes:
            volume.stop()


def _key(alert: Alert) -> tuple[str, frozenset[tuple[str, str]]]:
    labels = {k: v for k, v in alert.labels.items() if k not in ("alertname", "severity")}
    return alert.name, frozenset(labels.items())


@dataclass
class QueryOutcome:
    returned_data: bool = False
    missing_legend_labels: set[str] = field(default_factory=set)


@dataclass
class Watcher:
    prometheus: Prometheus
    queries: list[tuple[str, str, str, str]]  # (panel, refId, expr, legend)
    started: float = field(default_factory=time.monotonic)
    active: list[Alert] = field(default_factory=list)
    # every (alert, labels) ever active -> (first seen firing or None, last seen active)
    seen: dict[tuple[str, frozenset[tuple[str, str]]], list[float | None]] = \
        field(default_factory=dict)
    outcomes: dict[tuple[str, str], QueryOutcome] = field(default_factory=dict)
    polled: asyncio.Condition = field(default_factory=asyncio.Condition)

    def now(self) -> float:
        return time.monotonic() - self.started

    async def watch_alerts(self) -> None:
        while True:
            self.active = await self.prometheus.alerts()
            for alert in self.active:
                entry = self.seen.setdefault(_key(alert), [None, 0.0])
                if alert.state == "firing" and entry[0] is None:
                    entry[0] = self.now()
                entry[1] = self.now()
            async with self.polled:
                self.polled.notify_all()
            await asyncio.sleep(0.2)

    async def run_queries(self, rate_interval: str) -> None:
        while True:
            for panel, ref_id, expr, legend in self.queries:
                result = await self.prometheus.query(
                    expr.replace("$__rate_interval", rate_interval))
                outcome = self.outcomes.setdefault((panel, ref_id), QueryOutcome())
                if finite(result):
                    outcome.returned_data = True
                wanted = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
                for series in result:
                    outcome.missing_legend_labels |= wanted - set(series["metric"])
            await asyncio.sleep(1.0)

    def _active(self, name: str, labels: Labels, state: str | None = None) -> bool:
        return any(alert.matches(name, labels) and (state is None or alert.state == state)
                   for alert in self.active)

    async def firing(self, name: str, labels: Labels, since: float) -> float:
        """Wait until ``name`` with ``labels`` fires; seconds since ``since`` (a ``now()``)."""
        try:
            async with asyncio.timeout(DEADLINE_S), self.polled:
                await self.polled.wait_for(lambda: self._active(name, labels, "firing"))
        except TimeoutError:
            raise AssertionError(f"{name} {dict(labels)} did not fire within {DEADLINE_S:g} s; "
                                 f"active: {self.active}") from None
        return self.now() - since

    async def gone(self, name: str, labels: Labels, since: float) -> float:
        """Wait until ``name`` with ``labels`` is inactive again; seconds since ``since``."""
        try:
            async with asyncio.timeout(DEADLINE_S), self.polled:
                await self.polled.wait_for(lambda: not self._active(name, labels))
        except TimeoutError:
            raise AssertionError(f"{name} {dict(labels)} still active after {DEADLINE_S:g} s; "
                                 f"active: {self.active}") from None
        return self.now() - since

    def unexpected(self, expected: Mapping[str, list[Labels]]) -> list[str]:
        """Alerts that were ever active without matching one expected (name, labels)."""
        found = []
        for (name, labels), _ in self.seen.items():
            mapping = dict(labels)
            if not any(all(mapping.get(k) == v for k, v in want.items())
                       for want in expected.get(name, [])):
                found.append(f"{name} {mapping}")
        return found
