"""Per-file-system GID allocation: no two access points ever get the same GID.

Each file system has an inventory of the GIDs its access points use, learned once with a
paginated listing (``Cloud.access_points``) and then kept current by our own creates and
deletes, plus the GIDs reserved by creates still in flight. Picking a GID is a binary search
over the sorted taken GIDs for the first gap after a cursor, so its cost does not grow with
the width of the range. The inventory is re-learned when told a conflict happened and when it
is older than ``relearn_after`` seconds; reservations survive a re-learn.

Only one controller replica is active at a time (csi-provisioner's leader election), so this
process-local view is the single writer of new access points.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.params import GidRange
from efs_csi.cloud import AccessPoint, Cloud
from efs_csi.errors import ResourceExhausted


@dataclass(frozen=True)
class InventorySnapshot:
    """Read-only figures per file system (exported as metrics)."""

    file_system_id: str
    access_points: int
    gids_in_use: int
    range_size: int
    in_flight_creates: int


@dataclass(frozen=True)
class Reservation:
    file_system_id: str
    gid: int | None  # None: the caller fixed the GID itself (StorageClass ``gid``)


@dataclass
class _Inventory:
    """What is known about one file system's access points."""

    access_points: dict[str, AccessPoint] = field(default_factory=dict)
    by_token: dict[str, str] = field(default_factory=dict)
    gid_refs: Counter[int] = field(default_factory=Counter)
    taken: list[int] = field(default_factory=list)  # sorted: in-use and reserved GIDs
    reserved: Counter[int] = field(default_factory=Counter)
    in_flight: int = 0
    cursors: dict[GidRange, int] = field(default_factory=dict)
    learned_at: float | None = None
    stale: bool = True
    last_range_size: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Changes made while a listing is running; replayed over its result so that an access
    # point created (or deleted) during the listing is not lost (or resurrected).
    changed_while_learning: dict[str, AccessPoint | None] | None = None

    def _take(self, gid: int) -> None:
        index = bisect.bisect_left(self.taken, gid)
        if index == len(self.taken) or self.taken[index] != gid:
            self.taken.insert(index, gid)

    def _untake(self, gid: int) -> None:
        if self.gid_refs[gid] > 0 or self.reserved[gid] > 0:
            return
        index = bisect.bisect_left(self.taken, gid)
        if index < len(self.taken) and self.taken[index] == gid:
            del self.taken[index]

    def add(self, access_point: AccessPoint) -> None:
        self.remove(access_point.access_point_id)
        self.access_points[access_point.access_point_id] = access_point
        if access_point.client_token:
            self.by_token[access_point.client_token] = access_point.access_point_id
        if access_point.posix_user is not None:
            self.gid_refs[access_point.posix_user.gid] += 1
            self._take(access_point.posix_user.gid)

    def remove(self, access_point_id: str) -> AccessPoint | None:
        old = self.access_points.pop(access_point_id, None)
        if old is None:
            return None
        if self.by_token.get(old.client_token) == access_point_id:
            del self.by_token[old.client_token]
        if old.posix_user is not None:
            gid = old.posix_user.gid
            self.gid_refs[gid] -= 1
            if self.gid_refs[gid] <= 0:
                del self.gid_refs[gid]
            self._untake(gid)
        return old

    def reserve(self, gid: int) -> None:
        self.reserved[gid] += 1
        self._take(gid)

    def unreserve(self, gid: int) -> None:
        self.reserved[gid] -= 1
        if self.reserved[gid] <= 0:
            del self.reserved[gid]
        self._untake(gid)

    def in_range(self, gid_range: GidRange) -> int:
        return (bisect.bisect_right(self.taken, gid_range.end)
                - bisect.bisect_left(self.taken, gid_range.start))

    def first_free(self, low: int, high: int) -> int | None:
        """Smallest GID in [low, high] not taken, by binary search (taken is strictly sorted)."""
        first = bisect.bisect_left(self.taken, low)
        last = bisect.bisect_right(self.taken, high)
        # taken[first + k] == low + k for every k below the first gap: find where it breaks.
        lo, hi = first, last
        while lo < hi:
            mid = (lo + hi) // 2
            if self.taken[mid] == low + (mid - first):
                lo = mid + 1
            else:
                hi = mid
        candidate = low + (lo - first)
        return candidate if candidate <= high else None


class GidAllocator:
    """Hands out GIDs per file system, within a range, never the same one twice."""

    def __init__(self, *, access_point_limit: int, relearn_after: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = access_point_limit
        self._relearn_after = relearn_after
        self._clock = clock
        self._inventories: dict[str, _Inventory] = {}

    def _inventory(self, file_system_id: str) -> _Inventory:
        return self._inventories.setdefault(file_system_id, _Inventory())

    async def _ensure_learned(self, cloud: Cloud, file_system_id: str) -> _Inventory:
        inventory = self._inventory(file_system_id)
        if not self._needs_learning(inventory):
            return inventory
        async with inventory.lock:
            if self._needs_learning(inventory):  # another caller may have learned meanwhile
                inventory.changed_while_learning = {}
                try:
                    listed = [ap async for ap in cloud.access_points(file_system_id)]
                    self._replace(inventory, listed, inventory.changed_while_learning)
                finally:
                    inventory.changed_while_learning = None
        return inventory

    def _needs_learning(self, inventory: _Inventory) -> bool:
        return (inventory.stale or inventory.learned_at is None
                or self._clock() - inventory.learned_at > self._relearn_after)

    def _replace(self, inventory: _Inventory, listed: list[AccessPoint],
                 changes: dict[str, AccessPoint | None]) -> None:
        for access_point_id in list(inventory.access_points):
            inventory.remove(access_point_id)
        for access_point in listed:
            inventory.add(access_point)
        for access_point_id, change in changes.items():
            if change is None:
                inventory.remove(access_point_id)
            else:
                inventory.add(change)
        inventory.learned_at = self._clock()
        inventory.stale = False

    def mark_stale(self, file_system_id: str) -> None:
        """Re-learn this file system on its next use (an unexpected conflict was seen)."""
        self._inventory(file_system_id).stale = True

    async def find_by_token(self, cloud: Cloud, file_system_id: str,
                            client_token: str) -> AccessPoint | None:
        inventory = await self._ensure_learned(cloud, file_system_id)
        access_point_id = inventory.by_token.get(client_token)
        return None if access_point_id is None else inventory.access_points[access_point_id]

    async def known(self, cloud: Cloud, file_system_id: str) -> list[AccessPoint]:
        inventory = await self._ensure_learned(cloud, file_system_id)
        return list(inventory.access_points.values())

    def lookup(self, file_system_id: str, access_point_id: str) -> AccessPoint | None:
        """An access point already known, without any API call."""
        inventory = self._inventories.get(file_system_id)
        return None if inventory is None else inventory.access_points.get(access_point_id)

    async def reserve(self, cloud: Cloud, file_system_id: str, gid_range: GidRange,
                      fixed_gid: int | None = None) -> Reservation:
        """Reserve a GID (or just a create slot when ``fixed_gid`` is given)."""
        inventory = await self._ensure_learned(cloud, file_system_id)
        inventory.last_range_size = gid_range.size
        count = len(inventory.access_points) + inventory.in_flight
        if count >= self._limit:
            raise ResourceExhausted(
                f"file system {file_system_id}: access point limit reached ({count} of "
                f"{self._limit}, GID range {gid_range}); raise --access-point-limit if the "
                "EFS quota was raised")
        if fixed_gid is not None:
            inventory.in_flight += 1
            return Reservation(file_system_id, None)
        cursor = inventory.cursors.get(gid_range, gid_range.start)
        gid = inventory.first_free(cursor, gid_range.end)
        if gid is None:
            gid = inventory.first_free(gid_range.start, gid_range.end)
        if gid is None:
            raise ResourceExhausted(
                f"file system {file_system_id}: no free GID in range {gid_range} "
                f"({inventory.in_range(gid_range)} GIDs in use or reserved, "
                f"{count} access points)")
        inventory.cursors[gid_range] = gid + 1 if gid < gid_range.end else gid_range.start
        inventory.reserve(gid)
        inventory.in_flight += 1
        return Reservation(file_system_id, gid)

    def commit(self, reservation: Reservation, access_point: AccessPoint) -> None:
        """The create succeeded: the reservation becomes a known access point."""
        self._record(self._inventory(reservation.file_system_id), access_point)
        self.release(reservation)

    def release(self, reservation: Reservation) -> None:
        """The create finished (committed or failed): drop the reservation."""
        inventory = self._inventory(reservation.file_system_id)
        inventory.in_flight -= 1
        if reservation.gid is not None:
            inventory.unreserve(reservation.gid)

    @staticmethod
    def _record(inventory: _Inventory, access_point: AccessPoint) -> None:
        inventory.add(access_point)
        if inventory.changed_while_learning is not None:
            inventory.changed_while_learning[access_point.access_point_id] = access_point

    def remember(self, access_point: AccessPoint) -> None:
        inventory = self._inventories.get(access_point.file_system_id)
        if inventory is not None:
            self._record(inventory, access_point)

    def forget(self, file_system_id: str, access_point_id: str) -> None:
        inventory = self._inventories.get(file_system_id)
        if inventory is not None:
            inventory.remove(access_point_id)
            if inventory.changed_while_learning is not None:
                inventory.changed_while_learning[access_point_id] = None

    def snapshot(self) -> list[InventorySnapshot]:
        return [
            InventorySnapshot(
                file_system_id=fs_id,
                access_points=len(inv.access_points),
                gids_in_use=len(inv.gid_refs),
                range_size=inv.last_range_size,
                in_flight_creates=inv.in_flight,
            )
            for fs_id, inv in sorted(self._inventories.items())
        ]
