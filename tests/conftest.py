"""Shared fixtures: the asyncio task-leak guard, moto over HTTP, and real binaries."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.ci import in_ci
from tests.support.cluster_fixtures import cluster_dir, control_plane  # noqa: F401 - fixtures
from tests.support.efs_proxy import efs_proxy  # noqa: F401 - fixture registration
from tests.support.moto_server import MotoEndpoint, running_moto
from tests.support.processes import RunningBinary, start_binary

_SUMMARY = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SUMMARY] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    """Print the figures tests reported (e.g. csi-sanity's pass/skip counts) at the end."""
    lines = config.stash.get(_SUMMARY, [])
    if lines:
        terminalreporter.section("figures reported by tests")
        for line in lines:
            terminalreporter.write_line(line)


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
def moto_session() -> Iterator[MotoEndpoint]:
    with running_moto() as endpoint:
        yield endpoint


@pytest.fixture
def moto(moto_session: MotoEndpoint) -> MotoEndpoint:
    """A moto EFS API on loopback, reset for this test."""
    moto_session.reset()
    return moto_session


StartBinary = Callable[..., Awaitable[RunningBinary]]


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
