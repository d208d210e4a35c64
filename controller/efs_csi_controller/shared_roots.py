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

import bisect
import functools
from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePosixPath
from typing import Generic, TypeVar

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


@functools.lru_cache(maxsize=1 << 16)
def _normal_text(path: str) -> str:
    """``normalise`` as text, remembered: a create compares its root with every live access
    point's, so this runs once per access point rather than once per pair (PurePosixPath
    costs ~15 ms per create on a file system of 1,000 access points)."""
    return "/" + "/".join(part for part in path.split("/") if part)


def overlaps_with(root_path: str) -> Callable[[str], bool]:
    """A test of whether a root overlaps ``root_path`` (``overlap`` on text): a set lookup
    and a prefix test per root, for a create compares its root with every access point's."""
    root = _normal_text(root_path)
    holders = set(_holders(root))
    inside = "/" if root == "/" else root + "/"

    def overlaps(other_root: str) -> bool:
        other = _normal_text(other_root)
        return other in holders or other.startswith(inside)

    return overlaps


Item = TypeVar("Item")


def _holders(root: str) -> list[str]:
    """``root`` (normal text) and every directory above it, from ``/`` down."""
    if root == "/":
        return ["/"]
    parts = root.split("/")[1:]
    return ["/", *("/" + "/".join(parts[:depth]) for depth in range(1, len(parts) + 1))]


class RootIndex(Generic[Item]):
    """Items (access point ids, say) by normalised root, so that those whose root overlaps a
    given one are found in a few lookups rather than by comparing with every root: the roots
    at or above it are dict lookups (one per component), the roots inside it a contiguous run
    of the sorted distinct roots (every root that starts with ``root + "/"`` sorts together).
    Same answers as ``overlap`` on every pair (tests/controller/test_root_index.py)."""

    __slots__ = ("_items", "_sorted")

    def __init__(self) -> None:
        self._items: dict[str, list[Item]] = {}  # normal root -> its items, in order added
        self._sorted: list[str] = []  # the keys of _items, sorted

    def __len__(self) -> int:
        return sum(len(items) for items in self._items.values())

    def add(self, root_path: str, item: Item) -> None:
        root = _normal_text(root_path)
        items = self._items.get(root)
        if items is None:
            self._items[root] = [item]
            bisect.insort(self._sorted, root)
        else:
            items.append(item)

    def discard(self, root_path: str, item: Item) -> None:
        """Forget ``item`` under ``root_path`` (once), if it is there."""
        root = _normal_text(root_path)
        items = self._items.get(root)
        if items is None or item not in items:
            return
        items.remove(item)
        if not items:
            del self._items[root]
            index = bisect.bisect_left(self._sorted, root)
            del self._sorted[index]

    def clear(self) -> None:
        self._items.clear()
        self._sorted.clear()

    def overlapping(self, root_path: str) -> list[Item]:
        """The items whose root overlaps ``root_path``: equal, above it, or inside it."""
        root = _normal_text(root_path)
        if root == "/":
            return [item for items in self._items.values() for item in items]
        found = [item for holder in _holders(root) for item in self._items.get(holder, ())]
        inside = root + "/"
        index = bisect.bisect_left(self._sorted, inside)
        while index < len(self._sorted) and self._sorted[index].startswith(inside):
            found.extend(self._items[self._sorted[index]])
            index += 1
        return found


def conflicting_access_point(root_path: str, namespace: str | None,
                             live: Iterable[AccessPoint],
                             own_tokens: Sequence[str] = ()) -> AccessPoint | None:
    """A live driver-made access point of another namespace whose root overlaps ``root_path``.

    ``namespace`` is the new volume's PVC namespace (None when csi-provisioner does not pass
    it: then no namespace can be shown equal, and every overlap conflicts). Access points with
    one of ``own_tokens`` are this volume's own (a retried create) and never conflict.
    """
    overlaps = overlaps_with(root_path)
    ours = tag_value(namespace) if namespace else None
    for other in live:
        if not overlaps(other.root_path):  # first: almost every root is apart
            continue
        if other.client_token and other.client_token in own_tokens:
            continue
        if other.life_cycle_state in _GONE_STATES or CLUSTER_TAG not in other.tags:
            continue
        if ours is not None and other.tags.get(PVC_NAMESPACE_TAG) == ours:
            continue
        return other
    return None
