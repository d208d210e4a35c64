"""The speed tiers and the guards every test runs under; nothing else.

The fast tier (``make test-fast``: ``pytest -m "not slow"``) is pure logic and RPC over grpclib's
in-memory channel: no root, no subprocess, no server but cheap in-process ones (a metrics
endpoint, a fake instance-metadata or Kubernetes API on loopback). Everything else is ``slow``:
a test marked so, a test using a fixture that starts something real (``SLOW_FIXTURES``), and
every test of the suites that run the driver whole (``SLOW_SUITES``). The full suite, what CI
runs, is both. A test outside the slow tier that starts a process fails, and one that needs
root skips (a failure under CI), so the fast tier stays what it says.

The fixtures that start things live in ``tests/support/fixtures/``, one module per thing
started; each suite's conftest imports the ones its tests use, so this file imports neither an
AWS SDK, moto nor a Kubernetes client, and a run of one pure test file pays for none of them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import pytest_asyncio

from tests.support.ci import in_ci
from tests.support.mounts import mount_points_under

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


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The fast tier alone (``-m "not slow"``) does not even import the suites that are slow
    throughout: it would deselect every test they hold."""
    if (config.getoption("markexpr", "") == "not slow" and collection_path.parent == _TESTS
            and collection_path.name in SLOW_SUITES):
        return True
    return None


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
        self.tests: set[str] = set()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.tests.add(report.nodeid)
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
    """Print the figures tests reported (e.g. csi-sanity's pass/skip counts) at the end, the
    fast tier's size when it ran alone, and where the time went, by suite."""
    lines = config.stash.get(_SUMMARY, [])
    if lines:
        terminalreporter.section("figures reported by tests")
        for line in lines:
            terminalreporter.write_line(line)
    if config.getoption("markexpr", "") == "not slow" and _CLOCK in config.stash:
        terminalreporter.section("fast tier")
        terminalreporter.write_line(f"{len(config.stash[_CLOCK].tests)} tests ran")
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


@pytest.fixture(autouse=True)
def nothing_left_mounted(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test that leaves something mounted in its tmp_path (after every fixture of
    its own has finished), and unmount it so that the next tests are not blamed."""
    yield
    # funcargs is gone when pytest tears down after an interrupt.
    tmp_path = (getattr(request.node, "funcargs", None) or {}).get("tmp_path")
    if not isinstance(tmp_path, Path):
        return
    left = mount_points_under(tmp_path)
    for target in left:  # the deepest first
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
