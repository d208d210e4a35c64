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


def _normal_text(path: str) -> str:
    """``normalise`` as text: ``path`` itself when already normal (as EFS answers roots, and
    as the driver makes them: no second copy of the string is kept), else remembered."""
    if path.startswith("/") and "//" not in path and (path == "/" or not path.endswith("/")):
        return path
    return _normalised_text(path)


@functools.lru_cache(maxsize=1 << 12)
def _normalised_text(path: str) -> str:
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


class _Several(list[Item]):
    """The items of a root that holds more than one (most hold one: kept bare, no list)."""

    __slots__ = ()


class RootIndex(Generic[Item]):
    """Items (access point ids, say) by normalised root, so that those whose root overlaps a
    given one are found in a few lookups rather than by comparing with every root: the roots
    at or above it are dict lookups (one per component), the roots inside it a contiguous run
    of the sorted distinct roots (every root that starts with ``root + "/"`` sorts together).
    Same answers as ``overlap`` on every pair (tests/controller/test_root_index.py). Kept
    small for a file system of 10,000 access points: a root's one item is stored bare."""

    __slots__ = ("_count", "_items", "_sorted")

    def __init__(self) -> None:
        self._items: dict[str, Item | _Several[Item]] = {}  # normal root -> its item(s)
        self._sorted: list[str] = []  # the keys of _items, sorted
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @staticmethod
    def _each(held: Item | _Several[Item]) -> list[Item]:
        return list(held) if isinstance(held, _Several) else [held]

    def add(self, root_path: str, item: Item) -> None:
        root = _normal_text(root_path)
        if root not in self._items:
            self._items[root] = item
            bisect.insort(self._sorted, root)
        else:
            held = self._items[root]
            if isinstance(held, _Several):
                held.append(item)
            else:
                self._items[root] = _Several([held, item])
        self._count += 1

    def discard(self, root_path: str, item: Item) -> None:
        """Forget ``item`` under ``root_path`` (once), if it is there."""
        root = _normal_text(root_path)
        if root not in self._items:
            return
        held = self._items[root]
        if isinstance(held, _Several):
            if item not in held:
                return
            held.remove(item)
            if len(held) == 1:
                self._items[root] = held[0]
        elif held == item:
            del self._items[root]
            del self._sorted[bisect.bisect_left(self._sorted, root)]
        else:
            return
        self._count -= 1

    def overlapping(self, root_path: str) -> list[Item]:
        """The items whose root overlaps ``root_path``: equal, above it, or inside it."""
        root = _normal_text(root_path)
        if root == "/":
            return [item for held in self._items.values() for item in self._each(held)]
        found: list[Item] = []
        for holder in _holders(root):
            if holder in self._items:
                found.extend(self._each(self._items[holder]))
        inside = root + "/"
        index = bisect.bisect_left(self._sorted, inside)
        while index < len(self._sorted) and self._sorted[index].startswith(inside):
            found.extend(self._each(self._items[self._sorted[index]]))
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
