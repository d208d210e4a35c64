"""deploy/kubernetes is the chart rendered with defaults: fail when the two drift apart."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.ci import REPO, tool

GENERATOR = REPO / "scripts" / "generate-manifests.sh"
COMMITTED = REPO / "deploy" / "kubernetes"


def test_plain_manifests_match_the_chart(tmp_path: Path) -> None:
    env = {**os.environ, "HELM": tool("helm", "HELM")}
    subprocess.run([str(GENERATOR), str(tmp_path)], check=True, env=env, timeout=50)
    generated = {p.name: p.read_text() for p in sorted(tmp_path.iterdir())}
    committed = {p.name: p.read_text() for p in sorted(COMMITTED.iterdir())}
    assert generated.keys() == committed.keys()
    for name, text in generated.items():
        assert committed[name] == text, f"deploy/kubernetes/{name} drifted: run make manifests"
