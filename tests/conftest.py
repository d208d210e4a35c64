"""Shared fixtures (the asyncio task-leak guard, moto over HTTP, the EFS proxy, real binaries)
and the speed tiers.

The fast tier (``make test-fast``: ``pytest -m "not slow"``) is pure logic and RPC over grpclib's
in-memory channel: no root, no subprocess, no server but cheap in-process ones (a metrics
endpoint, a fake instance-metadata or Kubernetes API on loopback). Everything else is ``slow``:
a test marked so, a test using a fixture that starts something real (``SLOW_FIXTURES``), and
every test of the suites that run the driver whole (``SLOW_SUITES``). The full suite, what CI
runs, is both. A test outside the slow tier that starts a process fails, and one that needs
root skips (a failure under CI), so the fast tier stays what it says.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest
import pytest_asyncio

from efs_csi.adapters.kube import KubernetesAsyncioKube
from efs_csi.kube import KubeEndpoint
from efs_csi.metrics import MetricsEndpoint, new_registry
from efs_csi.rpc.identity import Readiness
from testbed.efs_proxy import EfsProxy, FileSystemSetup, make_file_system
from testbed.kube_api import FakeKubeApi
from testbed.moto_server import MotoEndpoint, running_moto
from testbed.processes import RunningBinary, StartBinary, start_binary
from tests.images.engine import Engine, built_images
from tests.support.ci import in_ci
from tests.support.cluster_fixtures import cluster_dir, control_plane  # noqa: F401 - fixtures
from tests.support.scrape import MetricsServer

# Fixtures that start real processes, mount, or serve moto: a test using one is slow.
SLOW_FIXTURES = frozenset({"binary", "moto_session", "moto", "efs_proxy", "mounts_cleaned",
                           "local_node", "control_plane", "cluster_dir", "engine",
                           "sanity_driver"})
# Suites that cross packages and run the driver whole (tests/<suite>/): slow throughout.
SLOW_SUITES = frozenset({"integration", "conformance", "reliability", "cluster", "chart",
                         "images", "e2e", "datapath"})
_TESTS = Path(__file__).parent


def is_slow(item: pytest.Item) -> bool:
    if item.get_closest_marker("slow") is not None:
        return True
    if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    suite = item.path.relative_to(_TESTS).parts[0] if item.path.is_relative_to(_TESTS) else ""
    return suite in SLOW_SUITES


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the slow tier before ``-m`` selects (tryfirst: before pytest's own selection)."""
    for item in items:
        if is_slow(item) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)


class _NoProcessInTheFastTier(subprocess.Popen):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("a test of the fast tier started a process: mark it "
                             "@pytest.mark.slow, or test the logic without the process")


@pytest.fixture(autouse=True)
def fast_tier_guard(request: pytest.FixtureRequest,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the slow tier, starting a process fails the test (asyncio's subprocesses go
    through ``subprocess.Popen`` too), and the test runs as if not root, so one that needs root
    skips, which CI turns into a failure."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setattr(subprocess, "Popen", _NoProcessInTheFastTier)
        monkeypatch.setattr(os, "geteuid", lambda: 65534)

_SUMMARY = pytest.StashKey[list[str]]()


class _SuiteClock:
    """Each test's setup, call and teardown time, added up by suite (tests/<suite>/), for the
    end-of-run table of where the time went. A session fixture (the image build, the kind run)
    counts in the suite of the first test that uses it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        parts = Path(report.location[0]).parts
        suite = parts[1] if len(parts) > 2 else "tests"
        self.seconds[suite] = self.seconds.get(suite, 0.0) + report.duration


_CLOCK = pytest.StashKey[_SuiteClock]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SUMMARY] = []
    config.stash[_CLOCK] = _SuiteClock()
    config.pluginmanager.register(config.stash[_CLOCK], "efs-csi-suite-clock")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    """Print the figures tests reported (e.g. csi-sanity's pass/skip counts) at the end, and
    where the time went, by suite."""
    lines = config.stash.get(_SUMMARY, [])
    if lines:
        terminalreporter.section("figures reported by tests")
        for line in lines:
            terminalreporter.write_line(line)
    seconds = config.stash[_CLOCK].seconds if _CLOCK in config.stash else {}
    if seconds:
        terminalreporter.section("where the time went, by suite (setup + call + teardown)")
        width = max(len(name) for name in [*seconds, "total"])
        rows = sorted(seconds.items(), key=lambda item: -item[1])
        for name, spent in [*rows, ("total", sum(seconds.values()))]:
            terminalreporter.write_line(f"{name:<{width}}  {spent:7.1f} s  {spent / 60:5.1f} min")


@pytest.fixture(scope="session")
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Add a line to the end-of-run summary that `make test` prints."""
    return request.config.stash[_SUMMARY].append


@pytest.fixture(scope="session")
def session_report(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """``report`` for session-scoped fixtures (e.g. the image build's timings and sizes)."""
    return pytestconfig.stash[_SUMMARY].append


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under CI a skip is a failure: CI must never go green by skipping what it cannot run."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI (CI must not skip): {report.longrepr}"


def mounts_under(directory: Path) -> list[str]:
    prefix = f"{directory}/"
    with open("/proc/self/mounts", encoding="utf-8") as table:
        # /proc/mounts escapes a space in a path as \040, and so on: compare like for like.
        targets = [line.split()[1].encode().decode("unicode_escape") for line in table]
    return [target for target in targets if target == str(directory)
            or target.startswith(prefix)]


@pytest.fixture(autouse=True)
def nothing_left_mounted(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test that leaves something mounted in its tmp_path (after every fixture of
    its own has finished), and unmount it so that the next tests are not blamed."""
    yield
    # funcargs is gone when pytest tears down after an interrupt.
    tmp_path = (getattr(request.node, "funcargs", None) or {}).get("tmp_path")
    if not isinstance(tmp_path, Path):
        return
    left = mounts_under(tmp_path)
    for target in sorted(left, reverse=True):  # the deepest first
        subprocess.run(["umount", "--lazy", target], check=False, capture_output=True)
    if left:
        pytest.fail(f"test left {len(left)} mount(s) behind: {', '.join(left)}")


@pytest_asyncio.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail any test that leaves asyncio tasks running behind it."""
    before = asyncio.all_tasks()
    yield
    for _ in range(3):  # let just-finished tasks run their done callbacks
        await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [task for task in asyncio.all_tasks() - before
              if task is not current and not task.done()]
    for task in leaked:
        task.cancel()
    if leaked:
        await asyncio.gather(*leaked, return_exceptions=True)
        names = ", ".join(sorted(task.get_name() + ":" + repr(task.get_coro()) for task in leaked))
        pytest.fail(f"test left {len(leaked)} asyncio task(s) running: {names}")


@pytest.fixture(scope="session")
def engine(session_report: Callable[[str], None]) -> Iterator[Engine]:
    """The three images, built once per session (a warm build takes seconds), and the engine
    that runs them (tests/images, tests/datapath)."""
    with built_images() as built:
        phases = built.report["phases_s"]
        session_report("image build (" + ", ".join(
            f"{name} {seconds:.1f}s" for name, seconds in phases.items()) + ")")
        session_report("image sizes (" + ", ".join(
            f"{image} {size / 1e6:.1f} MB"
            for image, size in built.report["image_bytes"].items()) + ")")
        session_report("image SBOMs (" + ", ".join(
            f"{target}: {counts['deb']} deb, {counts['pypi']} pypi, {counts['cargo']} cargo, "
            f"{counts['total']} in all, step {counts['step']}"
            for target, counts in built.report.get("sbom", {}).items()) + ")")
        yield built


@pytest.fixture(scope="session")
def moto_session() -> Iterator[MotoEndpoint]:
    with running_moto() as endpoint:
        yield endpoint


@pytest.fixture
def moto(moto_session: MotoEndpoint) -> MotoEndpoint:
    """A moto EFS API on loopback, reset for this test."""
    moto_session.reset()
    return moto_session


@pytest_asyncio.fixture
async def metrics_server() -> AsyncIterator[MetricsServer]:
    """A registry served by a real metrics endpoint on loopback (an in-process server)."""
    registry = new_registry()
    readiness = Readiness()
    endpoint = MetricsEndpoint(registry, "127.0.0.1", 0, healthy=lambda: readiness.ready)
    port = await endpoint.start()
    try:
        yield registry, port, readiness
    finally:
        await endpoint.stop()


@pytest_asyncio.fixture
async def fake_kube_api() -> AsyncIterator[FakeKubeApi]:
    """A fake Kubernetes API server on loopback, for faults a real one cannot show on cue."""
    fake = FakeKubeApi()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest_asyncio.fixture
async def kube_over_fake_api(fake_kube_api: FakeKubeApi,
                             tmp_path: Path) -> AsyncIterator[KubernetesAsyncioKube]:
    """The real Kubernetes adapter, pointed at ``fake_kube_api`` with a token file."""
    token = tmp_path / "token"
    token.write_text(fake_kube_api.token + "\n")
    adapter = KubernetesAsyncioKube(KubeEndpoint(host=fake_kube_api.url, token_file=token))
    try:
        yield adapter
    finally:
        await adapter.close()


@pytest.fixture
def efs_proxy(moto: MotoEndpoint) -> Iterator[EfsProxy]:
    """An EfsProxy in front of this test's (reset) moto; stopped after the test."""
    with EfsProxy(moto.url, seed=1) as proxy:
        yield proxy


@pytest.fixture
def file_system(efs_proxy: EfsProxy) -> FileSystemSetup:
    """A file system with mount targets in two zones, behind ``efs_proxy`` (counts reset)."""
    setup = make_file_system(efs_proxy.url)
    efs_proxy.reset_counts()
    return setup


@pytest_asyncio.fixture
async def binary(tmp_path: Path) -> AsyncIterator[StartBinary]:
    """Start ``controller`` or ``node`` as real subprocesses; all are stopped afterwards."""
    started: list[RunningBinary] = []

    async def start(kind: str, args: Sequence[str] = (), env: dict[str, str] | None = None,
                    socket_name: str | None = None) -> RunningBinary:
        directory = tmp_path / f"{kind}-{len(started)}"
        directory.mkdir(exist_ok=True)  # a test may prepare it (e.g. leave a stale socket)
        running = await start_binary(kind, directory, args, env,
                                     socket_name=socket_name or "csi.sock")
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.returncode is None:
            try:
                await running.stop(signal.SIGTERM, timeout=15)
            except TimeoutError:
                await running.stop(signal.SIGKILL)
