"""Skips that CI turns into failures.

A test that needs something this machine lacks (root, Go, helm) may skip on a laptop, but
under CI (``CI`` set to a true value) the same condition fails the test instead, so a missing
install step can never turn into a silently green run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

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
    """Path of a Go tool: $ENV_VAR, then .tools/bin (installed by make), then PATH."""
    candidates = [os.environ.get(env_var, ""), str(REPO / ".tools" / "bin" / name),
                  shutil.which(name) or ""]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    skip_or_fail(f"{name} not found (make tools installs it with Go)")
