"""What each binary's long-lived process loads before it serves: the serving stack only.

The heavy libraries come later or never (bench/startup.py measures what that buys): the
Kubernetes client only in the node's start-up helper process and on the controller's first
fileSystemIdConfigRef/SecretRef; aiohttp with the metrics endpoint or the AWS SDK; the AWS SDK
when the controller builds its client after serving begins, and in the node only for the local
backend's first access point. Checked in a fresh interpreter, as the binary starts.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a fresh interpreter per binary

HEAVY = ("kubernetes_asyncio", "aiohttp", "aiobotocore", "botocore")
BINARIES = ["efs_csi_node", "efs_csi_controller"]


@pytest.mark.parametrize("package", BINARIES)
def test_the_binary_imports_no_heavy_library_before_serving(package: str) -> None:
    script = (f"import json, sys, {package}.__main__, {package}.app\n"
              f"print(json.dumps([name for name in {list(HEAVY)!r} if name in sys.modules]))")
    loaded = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                            text=True, timeout=60).stdout
    assert json.loads(loaded) == []
