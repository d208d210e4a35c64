"""Fixtures of the reliability tests: moto and the EFS proxy, the binaries as processes."""

from __future__ import annotations

from tests.support.fixtures.aws import efs_proxy, file_system, moto, moto_session  # noqa: F401 - fixtures
from tests.support.fixtures.binaries import binary  # noqa: F401 - fixture
