"""Where a Go-built tool is (helm, kind, csi-sanity, ...): ``$ENV_VAR``, then ``.tools/bin``
(installed by ``make tools``), then ``PATH``. The tests skip (or, under CI, fail) without one
(``tests.support.ci.tool``); the benchmarks say what they leave out."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def find_tool(name: str, env_var: str) -> str | None:
    candidates = [os.environ.get(env_var, ""), str(REPO / ".tools" / "bin" / name),
                  shutil.which(name) or ""]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None
