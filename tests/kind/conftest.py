"""Fixtures of the kind tests: moto and the EFS proxy."""

from __future__ import annotations

from tests.support.fixtures.aws import efs_proxy, file_system, moto, moto_session  # noqa: F401 - fixtures
