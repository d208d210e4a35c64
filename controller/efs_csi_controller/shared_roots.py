"""Access points whose root directories overlap (pure).

Access points isolate tenants by root directory: an access point sees everything under its
root. Two roots overlap when they are equal or one lies inside the other; then both holders
read and write the shared part. Deletion keeps a directory another live access point overlaps
(``root_dir.refusal``); creation refuses a root that overlaps the root of a live access point
made for a volume in another namespace (``conflicting_access_point``), unless the operator
allows sharing (``--allow-shared-root-directories``).

Only access points a driver made count at create: those carrying the cluster tag (any
cluster's, or the reference driver's ``true``). An access point a person made by hand (one on
the StorageClass basePath to browse every volume, say) is the operator's own choice of who may
see what, and refusing every create beneath it would stop provisioning for no gain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

from efs_csi.cloud import AccessPoint
from efs_csi_controller.tags import CLUSTER_TAG, PVC_NAMESPACE_TAG, tag_value

# Access point states in which it no longer gives access to anything.
_GONE_STATES = frozenset({"deleting", "deleted"})


def normalise(path: str) -> PurePosixPath:
    """``path`` as an absolute path with no empty components (EFS forbids ``.``/``..``)."""
    return PurePosixPath("/" + "/".join(part for part in path.split("/") if part))


def overlap(one: PurePosixPath, other: PurePosixPath) -> bool:
    """Equal, or one inside the other."""
    return one == other or one in other.parents or other in one.parents


def conflicting_access_point(root_path: str, namespace: str | None,
                             live: Iterable[AccessPoint],
                             own_tokens: Sequence[str] = ()) -> AccessPoint | None:
    """A live driver-made access point of another namespace whose root overlaps ``root_path``.

    ``namespace`` is the new volume's PVC namespace (None when csi-provisioner does not pass
    it: then no namespace can be shown equal, and every overlap conflicts). Access points with
    one of ``own_tokens`` are this volume's own (a retried create) and never conflict.
    """
    root = normalise(root_path)
    ours = tag_value(namespace) if namespace else None
    for other in live:
        if other.client_token and other.client_token in own_tokens:
            continue
        if other.life_cycle_state in _GONE_STATES or CLUSTER_TAG not in other.tags:
            continue
        if not overlap(root, normalise(other.root_path)):
            continue
        theirs = other.tags.get(PVC_NAMESPACE_TAG)
        if ours is not None and theirs == ours:
            continue
        return other
    return None
