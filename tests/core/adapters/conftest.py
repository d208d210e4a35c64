"""Fixtures of the adapter tests: moto and the EFS proxy, the fake Kubernetes API."""

from __future__ import annotations

from tests.support.fixtures.aws import efs_proxy, file_system, moto, moto_session  # noqa: F401 - fixtures
from tests.support.fixtures.kube import fake_kube_api, kube_over_fake_api  # noqa: F401 - fixtures
