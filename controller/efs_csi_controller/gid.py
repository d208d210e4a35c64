"""Per-file-system GID allocation for new access points (pure logic over the ``Cloud`` port).

Concurrency assumptions, and what follows from them:

- Other writers exist. csi-provisioner's leader election keeps one replica of *this*
  controller active, but another cluster's controller, a person or a tool may create and
  delete access points on the same file system at any time, and EFS itself lets two access
  points share a GID. So what this process knows about a file system (its *inventory*: the
  access points, their client tokens and GIDs) is a cache of a listing
  (``Cloud.access_points``), never the truth.
- The inventory is trusted for at most ``max_age`` seconds (``--gid-inventory-max-age``),
  counted from when its listing *started*, against when the create *started*. A create that
  finds it older lists again first, so a lone create costs a listing and the create (as the
  reference driver does), while a burst of creates shares one listing and costs about one
  call per create. Creates that arrive while a listing runs wait for it (or for the next one,
  when it started too early for them); ``max_age = 0`` makes every create wait for a listing
  that started after it did.
- Hence the guarantee: a GID handed out here is never held by an access point that existed
  ``max_age`` seconds before the create started (with ``max_age = 0``: when it started), and
  this process never hands out one GID twice (in-flight reservations and our own creates are
  kept across re-listings; one still missing from a listing is kept for ``recent_grace``
  seconds, in case the listing lags behind the create).
- Another writer's access point made in the last ``max_age`` seconds is not seen. Picking
  uniformly at random among the free GIDs of the range (``random_index``) makes a collision
  with it unlikely (one in the number of free GIDs) where everyone taking the lowest free GID
  would make it certain; two controllers racing over the default range of ~7 million GIDs
  practically never meet.

Picking the n-th free GID is a binary search over the sorted taken GIDs, so its cost does not
grow with the width of the range. ``clock`` and ``random_index`` are injectable for tests.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from efs_csi.cloud import AccessPoint, Cloud
from efs_csi.errors import ResourceExhausted
from efs_csi_controller.params import GidRange

#: The default of ``--gid-inventory-max-age``: long enough for a burst to share one listing,
#: short enough that another writer's access point is seen within seconds.
DEFAULT_MAX_AGE = 5.0
#: How long an access point we created stays known although a listing does not show it.
RECENT_GRACE = 60.0

Clock = Callable[[], float]
RandomIndex = Callable[[int], int]  # n -> an index in [0, n)
# Seeded by the OS: two controllers started from one image must not draw the same GIDs.
_SYSTEM_RANDOM = random.SystemRandom()


def _bounds(gid_range: GidRange) -> tuple[int, int]:
    return gid_range.start, gid_range.end


@dataclass(frozen=True)
class RangeUse:
    """How full one GID range (a StorageClass's gidRangeStart-gidRangeEnd) is on a file system."""

    gid_range: str  # "start-end"
    used: int  # GIDs of the range held by access points or reserved by creates in flight
    size: int


@dataclass(frozen=True)
class InventorySnapshot:
    """Read-only figures per file system (exported as metrics)."""

    file_system_id: str
    access_points: int
    gids_in_use: int
    range_size: int
    in_flight_creates: int
    # Every range creates have drawn from on this file system since the controller started.
    gid_ranges: tuple[RangeUse, ...] = ()


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
    listed_at: float | None = None  # when the listing behind this inventory started
    stale: bool = True
    last_range_size: int = 0
    ranges: set[GidRange] = field(default_factory=set)  # drawn from (per StorageClass)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Access points this process created, by id, with when: kept across a listing that does
    # not show them yet.
    ours: dict[str, float] = field(default_factory=dict)
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

    def replace_all(self, access_points: list[AccessPoint]) -> None:
        """Swap the known access points for ``access_points``; reservations are kept."""
        self.access_points.clear()
        self.by_token.clear()
        self.gid_refs.clear()
        for access_point in access_points:
            self.access_points[access_point.access_point_id] = access_point
            if access_point.client_token:
                self.by_token[access_point.client_token] = access_point.access_point_id
            if access_point.posix_user is not None:
                self.gid_refs[access_point.posix_user.gid] += 1
        self.taken = sorted(set(self.gid_refs) | set(self.reserved))

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

    def nth_free(self, gid_range: GidRange, n: int) -> int:
        """The ``n``-th (from 0) GID of the range that is not taken; ``n`` must be below the
        number of free GIDs. Binary search: below ``taken[i]`` (inside the range) lie
        ``taken[i] - start - (i - first)`` free GIDs, a count that never decreases with i."""
        start = gid_range.start
        first = bisect.bisect_left(self.taken, start)
        lo, hi = first, bisect.bisect_right(self.taken, gid_range.end)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.taken[mid] - start - (mid - first) > n:
                hi = mid
            else:
                lo = mid + 1
        return start + n + (lo - first)


class GidAllocator:
    """Hands out GIDs per file system, within a range, never one this process knows is used."""

    def __init__(self, *, access_point_limit: int, max_age: float = DEFAULT_MAX_AGE,
                 clock: Clock = time.monotonic,
                 random_index: RandomIndex = _SYSTEM_RANDOM.randrange,
                 recent_grace: float = RECENT_GRACE) -> None:
        self._limit = access_point_limit
        self._max_age = max_age
        self._clock = clock
        self._random_index = random_index
        self._recent_grace = recent_grace
        self._inventories: dict[str, _Inventory] = {}

    def now(self) -> float:
        """The allocator's clock: what a create passes back as ``as_of``."""
        return self._clock()

    def _inventory(self, file_system_id: str) -> _Inventory:
        return self._inventories.setdefault(file_system_id, _Inventory())

    def _fresh_for(self, inventory: _Inventory, as_of: float) -> bool:
        return (not inventory.stale and inventory.listed_at is not None
                and inventory.listed_at >= as_of - self._max_age)

    async def _ensure_learned(self, cloud: Cloud, file_system_id: str,
                              as_of: float | None) -> _Inventory:
        """The inventory, listed again first unless fresh enough for a create that started
        at ``as_of`` (default: now)."""
        as_of = self._clock() if as_of is None else as_of
        inventory = self._inventory(file_system_id)
        if self._fresh_for(inventory, as_of):
            return inventory
        async with inventory.lock:
            # A listing that finished while we waited may have started late enough for us.
            if not self._fresh_for(inventory, as_of):
                await self._learn(cloud, file_system_id, inventory)
        return inventory

    async def _learn(self, cloud: Cloud, file_system_id: str, inventory: _Inventory) -> None:
        started = self._clock()
        changes: dict[str, AccessPoint | None] = {}
        inventory.changed_while_learning = changes
        try:
            listed = {ap.access_point_id: ap async for ap in cloud.access_points(file_system_id)}
        finally:
            inventory.changed_while_learning = None
        # Our recent creates the listing does not show yet stay known (listings may lag).
        for access_point_id, created_at in list(inventory.ours.items()):
            known = inventory.access_points.get(access_point_id)
            if access_point_id in listed or started - created_at > self._recent_grace:
                del inventory.ours[access_point_id]
            elif known is not None:
                listed[access_point_id] = known
        for access_point_id, change in changes.items():
            if change is None:
                listed.pop(access_point_id, None)
            else:
                listed[access_point_id] = change
        inventory.replace_all(list(listed.values()))
        inventory.listed_at = started
        inventory.stale = False

    def mark_stale(self, file_system_id: str) -> None:
        """List this file system again on its next use (an unexpected conflict was seen)."""
        self._inventory(file_system_id).stale = True

    async def find_by_token(self, cloud: Cloud, file_system_id: str, client_token: str,
                            as_of: float | None = None) -> AccessPoint | None:
        """The access point carrying ``client_token`` in a fresh enough listing. It may have
        been deleted since by another writer: confirm it before relying on it."""
        inventory = await self._ensure_learned(cloud, file_system_id, as_of)
        access_point_id = inventory.by_token.get(client_token)
        return None if access_point_id is None else inventory.access_points[access_point_id]

    def find_token_elsewhere(self, file_system_id: str,
                             client_token: str) -> AccessPoint | None:
        """An access point with ``client_token`` on another file system this process knows
        (EFS client tokens are unique per account and region, not per file system)."""
        for other_id, inventory in self._inventories.items():
            access_point_id = inventory.by_token.get(client_token)
            if other_id != file_system_id and access_point_id is not None:
                return inventory.access_points[access_point_id]
        return None

    async def known(self, cloud: Cloud, file_system_id: str) -> list[AccessPoint]:
        inventory = await self._ensure_learned(cloud, file_system_id, None)
        return list(inventory.access_points.values())

    def lookup(self, file_system_id: str, access_point_id: str) -> AccessPoint | None:
        """An access point known from a listing younger than ``max_age``, without any API
        call; None when unknown or when what is known is too old to rely on."""
        inventory = self._inventories.get(file_system_id)
        if inventory is None or not self._fresh_for(inventory, self._clock()):
            return None
        return inventory.access_points.get(access_point_id)

    def remembered(self, file_system_id: str, access_point_id: str) -> AccessPoint | None:
        """An access point this process has seen, however long ago. Only for what never
        changes (its file system, root directory, client token): whether it still exists
        needs ``lookup`` or EFS."""
        inventory = self._inventories.get(file_system_id)
        return None if inventory is None else inventory.access_points.get(access_point_id)

    async def reserve(self, cloud: Cloud, file_system_id: str, gid_range: GidRange,
                      fixed_gid: int | None = None, as_of: float | None = None) -> Reservation:
        """Reserve a GID chosen at random among the free ones of ``gid_range`` (or just a
        create slot when ``fixed_gid`` is given)."""
        inventory = await self._ensure_learned(cloud, file_system_id, as_of)
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
        inventory.ranges.add(gid_range)
        used = inventory.in_range(gid_range)
        free = gid_range.size - used
        if free <= 0:
            raise ResourceExhausted(
                f"file system {file_system_id}: no free GID in range {gid_range} "
                f"({used} GIDs in use or reserved, {count} access points)")
        gid = inventory.nth_free(gid_range, self._random_index(free))
        inventory.reserve(gid)
        inventory.in_flight += 1
        return Reservation(file_system_id, gid)

    def commit(self, reservation: Reservation, access_point: AccessPoint) -> None:
        """The create succeeded: the reservation becomes a known access point."""
        inventory = self._inventory(reservation.file_system_id)
        inventory.ours[access_point.access_point_id] = self._clock()
        self._record(inventory, access_point)
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
            inventory.ours.pop(access_point_id, None)
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
                gid_ranges=tuple(RangeUse(str(gid_range), inv.in_range(gid_range), gid_range.size)
                                 for gid_range in sorted(inv.ranges, key=_bounds)),
            )
            for fs_id, inv in sorted(self._inventories.items())
        ]
