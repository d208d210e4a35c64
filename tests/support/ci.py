"""Skips that CI turns into failures.

A test that needs something this machine lacks (root, Go, helm) may skip on a laptop, but
under CI (``CI`` set to a true value) the same condition fails the test instead, so a missing
install step can never turn into a silently green run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from testbed.tools import find_tool

REPO = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_root() -> None:
    if os.geteuid() != 0:
        skip_or_fail("needs root for real mounts")


def tool(name: str, env_var: str) -> str:
    """Path of a Go tool (``testbed.tools.find_tool``: $ENV_VAR, .tools/bin, PATH)."""
    found = find_tool(name, env_var)
    if found is None:
        skip_or_fail(f"{name} not found (make tools installs it with Go)")
    return found
