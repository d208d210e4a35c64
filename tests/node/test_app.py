"""The node's composition root: what it builds without serving anything."""

from __future__ import annotations

import sys

import pytest

from efs_csi.errors import FailedPrecondition
from efs_csi_node.app import LazyCloud


@pytest.mark.asyncio
async def test_local_backend_without_the_sdk_names_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The node's image has no EFS API client (efs-csi-node without [local]): an access point
    on the local backend is a clear FAILED_PRECONDITION, and closing never needs the SDK."""
    monkeypatch.setitem(sys.modules, "efs_csi.adapters.aws", None)  # importing it raises
    cloud = LazyCloud("us-east-1")
    with pytest.raises(FailedPrecondition, match=r"efs-csi-node\[local\]"):
        await cloud.describe_access_point("fsap-0123456789abcdef0")
    await cloud.close()
