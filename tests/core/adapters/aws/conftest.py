"""Fixtures for the AWS adapter tests: a file system behind the EFS proxy, and clouds on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from efs_csi.adapters.aws import CloudFactory
from tests.support.efs_proxy import EfsProxy, FileSystemSetup, make_file_system
from tests.support.moto_server import CREDENTIALS, REGION


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's fake credentials for the SDK's own credential chain (never real ones)."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EFS", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
def file_system(efs_proxy: EfsProxy) -> FileSystemSetup:
    setup = make_file_system(efs_proxy.url)
    efs_proxy.reset_counts()
    return setup


class RecordingObserver:
    """Records what the adapter reports (the metrics observer's stand-in)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, str | None]] = []

    def observe_call(self, operation: str, seconds: float, error_code: str | None) -> None:
        self.calls.append((operation, seconds, error_code))


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


@pytest_asyncio.fixture
async def factory(efs_proxy: EfsProxy, aws_credentials: None,
                  observer: RecordingObserver) -> AsyncIterator[CloudFactory]:
    async with CloudFactory(REGION, endpoint_url=efs_proxy.url, observer=observer) as opened:
        yield opened
