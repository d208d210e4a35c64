"""The image tests wait for the images (the session's ``engine`` fixture,
tests/support/fixtures/images.py)."""

from __future__ import annotations

import pytest

from tests.support.fixtures.aws import efs_proxy, file_system, moto, moto_session  # noqa: F401 - fixtures
from tests.support.fixtures.images import engine  # noqa: F401 - fixture


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first image test also waits for the build: a cold one takes minutes (efs-proxy's
    compilation alone about 22 on 2 cores)."""
    for item in items:
        if "tests/images/" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(3600))
