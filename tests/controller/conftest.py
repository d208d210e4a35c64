"""Fixtures of the controller tests: moto and the EFS proxy, the binaries as processes, a metrics
endpoint, the controller service over the in-memory cloud."""

from __future__ import annotations

from tests.support.controller import harness_fixture  # noqa: F401 - the harness fixture
from tests.support.fixtures.aws import efs_proxy, file_system, moto, moto_session  # noqa: F401 - fixtures
from tests.support.fixtures.binaries import binary  # noqa: F401 - fixture
from tests.support.fixtures.metrics import metrics_server  # noqa: F401 - fixture
