"""CSI request pieces shared by tests, benchmarks and the demo."""

from __future__ import annotations

import math
from collections.abc import Sequence

from efs_csi import csi

Mode = csi.VolumeCapabilityAccessModeMode


def mount_capability(mode: Mode = Mode.MULTI_NODE_MULTI_WRITER,
                     flags: Sequence[str] | None = None) -> csi.VolumeCapability:
    """A mount-type capability (EFS serves no block volumes)."""
    return csi.VolumeCapability(
        mount=csi.VolumeCapabilityMountVolume(mount_flags=list(flags or [])),
        access_mode=csi.VolumeCapabilityAccessMode(mode=mode))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (the smallest value with ``fraction`` of values at or below)."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]
