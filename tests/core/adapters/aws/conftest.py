"""Fixtures for the AWS adapter tests: the SDK's credentials, and clouds on the EFS proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from efs_csi.adapters.aws.roles import CloudFactory
from testbed.efs_proxy import EfsProxy
from testbed.fake_cloud import RecordingObserver
from testbed.moto_server import CREDENTIALS, REGION


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
def observer() -> RecordingObserver:
    return RecordingObserver()


@pytest_asyncio.fixture
async def factory(efs_proxy: EfsProxy, aws_credentials: None,
                  observer: RecordingObserver) -> AsyncIterator[CloudFactory]:
    async with CloudFactory(REGION, endpoint_url=efs_proxy.url, observer=observer) as opened:
        yield opened
