"""Fixtures of the chart tests: the binaries as processes."""

from __future__ import annotations

from tests.support.fixtures.binaries import binary  # noqa: F401 - fixture
