"""Fixtures of the core tests: a metrics endpoint (the adapters' own: tests/core/adapters)."""

from __future__ import annotations

from tests.support.fixtures.metrics import metrics_server  # noqa: F401 - fixture
