"""Per-file-system GID allocation for new access points, and the check that keeps each GID it
hands out unshared (pure logic over the ``Cloud`` port).

Other writers exist. csi-provisioner's leader election keeps one replica of *this* controller
active, but another cluster's controller, a person or a tool may create and delete access points
on the same file system at any time, and EFS itself lets two access points share a GID. So what
this process knows about a file system (its *inventory*: the access points, their client tokens
and GIDs) is a cache of a listing (``Cloud.access_points``), never the truth: a GID is picked
from the inventory, then checked against the file system as it is after the create.

- Picking (``reserve``): uniformly at random among the GIDs of the range that the inventory
  shows free, never one this process holds or is creating (so one process never hands out a
  GID twice; an access point we created that a listing does not show yet is kept for
  ``recent_grace`` seconds). Before a pick in a *narrow* range (fewer than ``WIDE_FACTOR``
  times ``access_point_limit`` GIDs) an inventory older than ``max_age``
  (``--gid-inventory-max-age``) is listed again: a stale view of a crowded range would often
  pick a GID that must then be given up. A *wide* range is not listed first: even a file
  system full of access points leaves a pick less than one chance in ``WIDE_FACTOR`` of
  meeting one, and the check below catches it.
- Checking (``settle``): a create is answered only once a listing that started after the
  create completed shows the new access point (so the listing is not behind it) and no other
  live access point with its GID. When it shows one (a *rival*), ours yields at once to a rival
  this driver did not make (a person, a tool, the reference driver: they never check), and
  to a rival of ours with a lower access point id (the rule every controller applies alike).
  When ours has the lowest id, it gives the rivals' controllers ``recheck_pauses`` to yield,
  listing again after each pause, and yields itself if a rival stays (one answered before ours
  existed never looks again). Yielding is the caller's: it reserves another GID (the rival's
  is now known to be taken), creates, deletes the access point it gave up, and settles again.

Why no GID is shared, whatever else writes. Assumed: a listing shows every access point that
exists from its start to its end, whatever its pages (the new access point being listed guards
against a listing that lags behind the create). An access point is kept only by a listing that
shows no rival, and waiting never keeps one. Of two access points with one GID made by
controllers that check, the listing that checks the one whose create completed last started
after both creates, so it shows the other, and the last one is not kept while the other stays.
A writer that does not check is seen by every check that starts after its create. Not covered:
a GID that a writer that does not check takes after ours was answered (it could have listed
first), and a StorageClass ``gid``, shared on purpose.

Cost: one listing settles every create of this process on the file system that completed
before it started. It starts when no other create of ours is in flight there, when
``settle_batch`` creates wait for it, when none has finished for ``settle_quiet`` seconds (what
is left of a burst is backing off from throttles), or once the first has waited
``settle_delay`` seconds (both stretched to the time the latest listing took, when longer: a
file system of many pages is listed about as often as it takes to list it). So
a lone create costs its create and one listing, and a burst about one call per create (its
creates and a few shared listings). It also refreshes the inventory. Picking the n-th free GID
is a binary search over the sorted taken GIDs, so its cost does not grow with the width of the
range. The inventory keeps each access point as a compact record
(``efs_csi_controller.compact``: ~90 bytes beside its id, token and root strings, rather than
~350) and a listing updates it in place, touching only what came, went or changed: a file
system of 10,000 access points is known in ~4 MiB. ``clock`` and ``random_index`` are
injectable for tests.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property

from efs_csi.cloud import GONE_STATES, AccessPoint, Cloud
from efs_csi.errors import AccessPointLimitReached, ResourceExhausted, Unavailable
from efs_csi_controller.compact import CompactAccessPoint, Compactor
from efs_csi_controller.params import GID_RANGE_END, GID_RANGE_START, GidRange
from efs_csi_controller.shared_roots import RootIndex

#: The default of ``--gid-inventory-max-age``: how old a listing may be for a pick in a narrow
#: range; short enough that another writer's access point is seen within seconds.
DEFAULT_MAX_AGE = 5.0
#: How long an access point we created stays known although a listing does not show it.
RECENT_GRACE = 60.0
#: A range this many times wider than the access point limit is picked from without listing.
WIDE_FACTOR = 100
#: A finished create waits at most this long for others to share its settling listing ...
SETTLE_DELAY = 1.0
#: ... or until this many wait for it, or until no create has finished for this long (the
#: rest of a burst are stragglers backing off from throttles: not worth waiting for).
SETTLE_BATCH = 100
SETTLE_QUIET = 0.5
#: Pauses before listing again, while a rival may yet yield or a listing lags behind a create:
#: long enough for another controller to settle its own create (its ``settle_delay``, a
#: listing and a delete), short enough for a create's deadline.
RECHECK_PAUSES = (0.5, 1.0, 2.0, 2.0)

Clock = Callable[[], float]
RandomIndex = Callable[[int], int]  # n -> an index in [0, n)
#: Whether an access point was made by a controller that settles its GIDs as this one does.
Settles = Callable[[AccessPoint], bool]
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


def _never(access_point: AccessPoint) -> bool:
    """Treat every rival as made by a writer that does not settle: yield at once (safe)."""
    return False


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
    gid_yields: int = 0


@dataclass(frozen=True)
class Reservation:
    file_system_id: str
    gid: int | None  # None: the caller fixed the GID itself (StorageClass ``gid``)


class Listing:
    """What one listing of a file system showed, as EFS answered it; ``number`` counts the
    listings of the file system started by this process (this one included). Kept compact:
    the records it showed (the very ones the inventory holds where they did not change), and,
    once a create is judged against it, their ids by GID (one id held bare: a GID has one
    access point but in a conflict)."""

    def __init__(self, number: int, file_system_id: str,
                 access_points: dict[str, CompactAccessPoint]) -> None:
        self.number = number
        self._file_system_id = file_system_id
        self.access_points = access_points

    @cached_property
    def _by_gid(self) -> dict[int, str | list[str]]:
        by_gid: dict[int, str | list[str]] = {}
        for access_point_id, known in self.access_points.items():
            if known.gid is None:
                continue
            held = by_gid.setdefault(known.gid, access_point_id)
            if held is not access_point_id:
                if isinstance(held, str):
                    by_gid[known.gid] = [held, access_point_id]
                else:
                    held.append(access_point_id)
        return by_gid

    def shows(self, access_point_id: str) -> bool:
        return access_point_id in self.access_points

    def with_gid(self, gid: int) -> list[AccessPoint]:
        held = self._by_gid.get(gid, ())
        return [self.access_points[access_point_id].expand(access_point_id,
                                                           self._file_system_id)
                for access_point_id in ([held] if isinstance(held, str) else held)]


class Verdict(Enum):
    KEEP = "keep"  # no rival: answer with it
    YIELD = "yield"  # give the GID up: delete, take another
    WAIT = "wait"  # ours has the lowest id of rivals that all settle: they should yield
    UNSEEN = "unseen"  # the listing does not show ours yet: it lags behind the create


def judge(candidate: AccessPoint, listing: Listing,
          settles: Settles) -> tuple[Verdict, tuple[AccessPoint, ...]]:
    """What ``candidate`` (an access point with a POSIX user) must do about the other live
    access points ``listing`` shows with its GID (see the module docstring)."""
    if not listing.shows(candidate.access_point_id):
        return Verdict.UNSEEN, ()
    assert candidate.posix_user is not None
    rivals = tuple(other for other in listing.with_gid(candidate.posix_user.gid)
                   if other.access_point_id != candidate.access_point_id
                   and other.life_cycle_state not in GONE_STATES)
    if not rivals:
        return Verdict.KEEP, ()
    if any(not settles(rival) or rival.access_point_id < candidate.access_point_id
           for rival in rivals):
        return Verdict.YIELD, rivals
    return Verdict.WAIT, rivals


@dataclass(frozen=True)
class Settlement:
    """How ``settle`` ended: ``kept``, or given up because of ``rivals``. What is known of the
    file system's access points right after its listing (``known_now`` then), as far as the
    create needs it: the others that carry the settled access point's very client token
    (``duplicates``: an API that does not honour ClientToken made them), and, when kept,
    those whose root overlaps its own (``overlapping``)."""

    kept: bool
    rivals: tuple[AccessPoint, ...] = ()
    duplicates: tuple[AccessPoint, ...] = ()
    overlapping: tuple[AccessPoint, ...] = ()


@dataclass(frozen=True)
class KnownForCreate:
    """What is known for a volume's create: the access point under each of its client tokens
    (in the tokens' order), one under its first token on another file system (``elsewhere``),
    and those whose root overlaps its root. Known, not confirmed: another writer may have
    deleted them since."""

    by_yields: tuple[AccessPoint | None, ...]
    elsewhere: AccessPoint | None
    overlapping: tuple[AccessPoint, ...]


@dataclass
class _Inventory:
    """What is known about one file system's access points: each as a compact record
    (``efs_csi_controller.compact``) by id, and the indexes over them (by client token, GID
    and root), all updated in place, one access point at a time."""

    file_system_id: str = ""
    access_points: dict[str, CompactAccessPoint] = field(default_factory=dict)
    by_token: dict[str, str] = field(default_factory=dict)
    # Client tokens that more than one known access point carries (an EFS-compatible API that
    # does not honour ClientToken makes such), with the ids that carry them.
    shared_tokens: dict[str, set[str]] = field(default_factory=dict)
    gid_refs: Counter[int] = field(default_factory=Counter)
    taken: list[int] = field(default_factory=list)  # sorted: in-use and reserved GIDs
    reserved: Counter[int] = field(default_factory=Counter)
    in_flight: int = 0
    listed_at: float | None = None  # when the listing behind this inventory started
    stale: bool = True
    last_range_size: int = 0
    ranges: set[GidRange] = field(default_factory=set)  # drawn from (per StorageClass)
    # The known access points' ids by root: those a new root overlaps in a few lookups.
    roots: RootIndex[str] = field(default_factory=RootIndex)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Access points this process created, by id, with when: kept across a listing that does
    # not show them yet.
    ours: dict[str, float] = field(default_factory=dict)
    # Changes made while a listing is running; replayed over its result so that an access
    # point created (or deleted) during the listing is not lost (or resurrected).
    changed_while_learning: dict[str, CompactAccessPoint | None] | None = None
    # Listings started so far; the latest as EFS answered it (what settles creates; dropped
    # once no create waits for a listing, since only a later one can serve the next); and the
    # creates waiting for a listing: (listings started when it began to wait, when), in the
    # order they began (both figures never decrease along it).
    listings_started: int = 0
    listing: Listing | None = None
    settling: list[tuple[int, float]] = field(default_factory=list)
    # Set (and replaced) whenever a listing ends or a create of ours stops being in flight.
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    last_finished: float = -math.inf  # when a create of ours last finished here
    last_listing_seconds: float = 0.0  # how long the latest listing took
    gid_yields: int = 0

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def unserved(self) -> list[tuple[int, float]]:
        """The waiting creates no listing started so far will serve."""
        return self.settling[bisect.bisect_left(self.settling,
                                                (self.listings_started, -math.inf)):]

    def expand(self, access_point_id: str) -> AccessPoint:
        return self.access_points[access_point_id].expand(access_point_id,
                                                          self.file_system_id)

    def expand_all(self, access_point_ids: Iterable[str]) -> list[AccessPoint]:
        return [self.expand(access_point_id) for access_point_id in access_point_ids]

    def carrying(self, client_token: str) -> list[str]:
        """The ids of the known access points with ``client_token`` (mostly one or none)."""
        shared = self.shared_tokens.get(client_token)
        if shared is not None:
            return sorted(shared)
        access_point_id = self.by_token.get(client_token)
        return [] if access_point_id is None else [access_point_id]

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

    def add(self, access_point_id: str, known: CompactAccessPoint, *,
            sorting: bool = True) -> None:
        """Know ``known`` under ``access_point_id`` (replacing what was known under it);
        ``sorting=False`` leaves ``taken`` to ``update``, which sorts it once for a listing's
        many changes."""
        if self.access_points.get(access_point_id) is known:
            return
        self.remove(access_point_id, sorting=sorting)
        self.access_points[access_point_id] = known
        self.roots.add(known.root_path, access_point_id)
        token = known.client_token
        if token:
            other = self.by_token.get(token)
            if other is not None and other != access_point_id:
                self.shared_tokens.setdefault(token, {other}).add(access_point_id)
            self.by_token[token] = access_point_id
        if known.gid is not None:
            self.gid_refs[known.gid] += 1
            if sorting:
                self._take(known.gid)

    def remove(self, access_point_id: str, *, sorting: bool = True) -> CompactAccessPoint | None:
        old = self.access_points.pop(access_point_id, None)
        if old is None:
            return None
        self.roots.discard(old.root_path, access_point_id)
        self._drop_token(old.client_token, access_point_id)
        if old.gid is not None:
            gid = old.gid
            self.gid_refs[gid] -= 1
            if self.gid_refs[gid] <= 0:
                del self.gid_refs[gid]
            if sorting:
                self._untake(gid)
        return old

    def _drop_token(self, token: str, access_point_id: str) -> None:
        shared = self.shared_tokens.get(token)
        if shared is not None:
            shared.discard(access_point_id)
            if self.by_token.get(token) == access_point_id:
                self.by_token[token] = min(shared)
            if len(shared) == 1:
                del self.shared_tokens[token]
        elif self.by_token.get(token) == access_point_id:
            del self.by_token[token]

    def update(self, listed: Mapping[str, CompactAccessPoint],
               kept: Mapping[str, CompactAccessPoint | None]) -> None:
        """Make what is known ``listed`` (by id) with ``kept`` over it (an access point, or
        None for one gone, that the listing does not have the last word on), in place: only
        the access points that came, went or changed are touched (one the listing shows
        unchanged is the very record already known, ``_learn``); reservations stay."""
        touched = 0
        for access_point_id in [access_point_id for access_point_id in self.access_points
                                if access_point_id not in listed
                                and kept.get(access_point_id) is None]:
            self.remove(access_point_id, sorting=False)
            touched += 1
        for access_point_id, known in listed.items():
            if access_point_id not in kept and self.access_points.get(access_point_id) is not known:
                self.add(access_point_id, known, sorting=False)
                touched += 1
        for access_point_id, change in kept.items():
            if change is None:
                touched += self.remove(access_point_id, sorting=False) is not None
            elif self.access_points.get(access_point_id) is not change:
                self.add(access_point_id, change, sorting=False)
                touched += 1
        if touched:
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
    """Hands out GIDs per file system, within a range, never one this process knows is used,
    and settles each against the file system after its create (see the module docstring)."""

    def __init__(self, *, access_point_limit: int, max_age: float = DEFAULT_MAX_AGE,
                 clock: Clock = time.monotonic,
                 random_index: RandomIndex = _SYSTEM_RANDOM.randrange,
                 recent_grace: float = RECENT_GRACE, settle_delay: float = SETTLE_DELAY,
                 settle_batch: int = SETTLE_BATCH, settle_quiet: float = SETTLE_QUIET,
                 recheck_pauses: tuple[float, ...] = RECHECK_PAUSES) -> None:
        self._limit = access_point_limit
        self._max_age = max_age
        self._clock = clock
        self._random_index = random_index
        self._recent_grace = recent_grace
        self._settle_delay = settle_delay
        self._settle_batch = settle_batch
        self._settle_quiet = settle_quiet
        self._recheck_pauses = recheck_pauses
        self._inventories: dict[str, _Inventory] = {}
        self._compactor = Compactor()

    def now(self) -> float:
        """The allocator's clock: what a create passes back as ``as_of``."""
        return self._clock()

    def _inventory(self, file_system_id: str) -> _Inventory:
        inventory = self._inventories.get(file_system_id)
        if inventory is None:
            inventory = self._inventories[file_system_id] = _Inventory(file_system_id)
        return inventory

    def _fresh_for(self, inventory: _Inventory, as_of: float) -> bool:
        return (not inventory.stale and inventory.listed_at is not None
                and inventory.listed_at >= as_of - self._max_age)

    def is_wide(self, gid_range: GidRange) -> bool:
        """Whether a pick in ``gid_range`` needs no listing first (see the module docstring)."""
        return gid_range.size >= WIDE_FACTOR * self._limit

    async def _ensure_learned(self, cloud: Cloud, file_system_id: str,
                              as_of: float | None, max_age: float | None = None) -> _Inventory:
        """The inventory, listed again first unless fresh enough (``max_age``, default the
        allocator's) for a create that started at ``as_of`` (default: now)."""
        as_of = self._clock() if as_of is None else as_of
        max_age = self._max_age if max_age is None else max_age
        inventory = self._inventory(file_system_id)

        def fresh() -> bool:
            return (not inventory.stale and inventory.listed_at is not None
                    and inventory.listed_at >= as_of - max_age)

        if fresh():
            return inventory
        async with inventory.lock:
            # A listing that finished while we waited may have started late enough for us.
            if not fresh():
                await self._learn(cloud, file_system_id, inventory)
        return inventory

    async def _learn(self, cloud: Cloud, file_system_id: str, inventory: _Inventory) -> None:
        started = self._clock()
        inventory.listings_started += 1
        number = inventory.listings_started
        changes: dict[str, CompactAccessPoint | None] = {}
        inventory.changed_while_learning = changes
        before = inventory.access_points
        listed: dict[str, CompactAccessPoint] = {}
        try:
            async for access_point in cloud.access_points(file_system_id):
                # One the listing shows unchanged stays the record already known, and the new
                # one is freed at once: a listing of 10,000 keeps no second inventory alive.
                known = self._compactor.compact(access_point)
                old = before.get(access_point.access_point_id)
                listed[access_point.access_point_id] = old if old == known else known
        finally:
            inventory.changed_while_learning = None
            inventory.notify()  # waiters re-check, whether this listing ended well or not
        inventory.last_listing_seconds = max(0.0, self._clock() - started)
        # Kept for the creates waiting to settle; none waits: only a later listing can serve
        # the next one.
        inventory.listing = (Listing(number, file_system_id, listed)
                             if inventory.settling else None)
        # What the listing does not have the last word on: our recent creates it does not
        # show yet (listings may lag), and what changed while it ran.
        kept: dict[str, CompactAccessPoint | None] = {}
        for access_point_id, created_at in list(inventory.ours.items()):
            ours = inventory.access_points.get(access_point_id)
            if access_point_id in listed or started - created_at > self._recent_grace:
                del inventory.ours[access_point_id]
            elif ours is not None:
                kept[access_point_id] = ours
        kept.update(changes)
        inventory.update(listed, kept)
        inventory.listed_at = started
        inventory.stale = False

    def mark_stale(self, file_system_id: str) -> None:
        """List this file system again on its next use (an unexpected conflict was seen)."""
        self._inventory(file_system_id).stale = True

    async def prepare(self, cloud: Cloud, file_system_id: str, gid_range: GidRange | None,
                      as_of: float | None = None, *, current: bool = False,
                      listed_when_old: bool = False) -> None:
        """List the file system first when what is known is not enough for a create that
        started at ``as_of`` (default: now): ``current`` needs a listing that started after
        it; a pick in a narrow ``gid_range``, or ``listed_when_old``, one younger than
        ``max_age``; anything else none."""
        as_of = self._clock() if as_of is None else as_of
        if current:
            await self._ensure_learned(cloud, file_system_id, as_of, max_age=0.0)
        elif listed_when_old or (gid_range is not None and not self.is_wide(gid_range)):
            await self._ensure_learned(cloud, file_system_id, as_of)

    def find_known(self, file_system_id: str, client_token: str) -> AccessPoint | None:
        """The access point carrying ``client_token`` in what is known, without any API call.
        It may have been deleted since by another writer: confirm it before relying on it."""
        inventory = self._inventories.get(file_system_id)
        if inventory is None:
            return None
        access_point_id = inventory.by_token.get(client_token)
        return None if access_point_id is None else inventory.expand(access_point_id)

    async def known_for_create(self, cloud: Cloud, file_system_id: str,
                               client_tokens: tuple[str, ...], root_path: str,
                               gid_range: GidRange | None, *, current: bool = False,
                               listed_when_old: bool = False) -> KnownForCreate:
        """What is known for a volume's create (its ``client_tokens`` and ``root_path``), once
        ``prepare`` has listed the file system if the create needs it (the other arguments
        are ``prepare``'s)."""
        await self.prepare(cloud, file_system_id, gid_range, current=current,
                           listed_when_old=listed_when_old)
        return KnownForCreate(self.find_known_tokens(file_system_id, client_tokens),
                              self.find_token_elsewhere(file_system_id, client_tokens[0]),
                              tuple(self.known_overlapping(file_system_id, root_path)))

    def find_known_tokens(self, file_system_id: str,
                          client_tokens: tuple[str, ...]) -> tuple[AccessPoint | None, ...]:
        """``find_known`` for each of ``client_tokens`` (a volume's tokens), in their order."""
        inventory = self._inventories.get(file_system_id)
        if inventory is None:
            return (None,) * len(client_tokens)
        ids = [inventory.by_token.get(token) for token in client_tokens]
        return tuple(None if access_point_id is None else inventory.expand(access_point_id)
                     for access_point_id in ids)

    async def find_by_token(self, cloud: Cloud, file_system_id: str, client_token: str,
                            as_of: float | None = None) -> AccessPoint | None:
        """The access point carrying ``client_token`` in a fresh enough listing. It may have
        been deleted since by another writer: confirm it before relying on it."""
        await self._ensure_learned(cloud, file_system_id, as_of)
        return self.find_known(file_system_id, client_token)

    def find_token_elsewhere(self, file_system_id: str,
                             client_token: str) -> AccessPoint | None:
        """An access point with ``client_token`` on another file system this process knows
        (EFS client tokens are unique per account and region, not per file system)."""
        for other_id, inventory in self._inventories.items():
            access_point_id = inventory.by_token.get(client_token)
            if other_id != file_system_id and access_point_id is not None:
                return inventory.expand(access_point_id)
        return None

    async def known(self, cloud: Cloud, file_system_id: str) -> list[AccessPoint]:
        inventory = await self._ensure_learned(cloud, file_system_id, None)
        return inventory.expand_all(list(inventory.access_points))

    async def known_overlapping_listed(self, cloud: Cloud, file_system_id: str,
                                       root_path: str) -> list[AccessPoint]:
        """``known_overlapping`` in a listing younger than ``max_age`` (what ``known`` lists
        first), without expanding every known access point."""
        await self._ensure_learned(cloud, file_system_id, None)
        return self.known_overlapping(file_system_id, root_path)

    def known_with_token(self, file_system_id: str, client_token: str) -> list[AccessPoint]:
        """Every known access point carrying ``client_token`` (one, but for an API that does
        not honour ClientToken), without any API call."""
        inventory = self._inventories.get(file_system_id)
        return [] if inventory is None else inventory.expand_all(inventory.carrying(client_token))

    def known_now(self, file_system_id: str) -> list[AccessPoint]:
        """What is known of the file system's access points, without any API call (right
        after ``settle``: everything that existed before the settled create)."""
        inventory = self._inventories.get(file_system_id)
        return [] if inventory is None else inventory.expand_all(list(inventory.access_points))

    def known_overlapping(self, file_system_id: str, root_path: str) -> list[AccessPoint]:
        """Those of ``known_now`` whose root overlaps ``root_path`` (``shared_roots``), found
        by the inventory's index of roots rather than by comparing with every root."""
        inventory = self._inventories.get(file_system_id)
        if inventory is None:
            return []
        return inventory.expand_all(inventory.roots.overlapping(root_path))

    def lookup(self, file_system_id: str, access_point_id: str) -> AccessPoint | None:
        """An access point known from a listing younger than ``max_age``, without any API
        call; None when unknown or when what is known is too old to rely on."""
        inventory = self._inventories.get(file_system_id)
        if (inventory is None or not self._fresh_for(inventory, self._clock())
                or access_point_id not in inventory.access_points):
            return None
        return inventory.expand(access_point_id)

    def remembered(self, file_system_id: str, access_point_id: str) -> AccessPoint | None:
        """An access point this process has seen, however long ago. Only for what never
        changes (its file system, root directory, client token): whether it still exists
        needs ``lookup`` or EFS."""
        inventory = self._inventories.get(file_system_id)
        if inventory is None or access_point_id not in inventory.access_points:
            return None
        return inventory.expand(access_point_id)

    async def reserve(self, cloud: Cloud, file_system_id: str, gid_range: GidRange,
                      fixed_gid: int | None = None, as_of: float | None = None) -> Reservation:
        """Reserve a GID chosen at random among the free ones of ``gid_range`` (or just a
        create slot when ``fixed_gid`` is given); a narrow range is listed first when what is
        known is too old, and listed again before it is declared full."""
        as_of = self._clock() if as_of is None else as_of
        await self.prepare(cloud, file_system_id, None if fixed_gid is not None else gid_range,
                           as_of)
        inventory = self._inventory(file_system_id)
        inventory.last_range_size = gid_range.size
        count = len(inventory.access_points) + inventory.in_flight
        if count >= self._limit:
            raise AccessPointLimitReached(
                f"file system {file_system_id}: access point limit reached ({count} of "
                f"{self._limit}, GID range {gid_range}); raise --access-point-limit if the "
                "EFS quota was raised")
        if fixed_gid is not None:
            inventory.in_flight += 1
            return Reservation(file_system_id, None)
        inventory.ranges.add(gid_range)
        free = gid_range.size - inventory.in_range(gid_range)
        if free <= 0 and (inventory.listed_at is None or inventory.listed_at < as_of):
            # Full as far as we know: make sure of it with a listing that started after the
            # create did (an access point may have been deleted meanwhile).
            await self._ensure_learned(cloud, file_system_id, as_of, max_age=0.0)
            free = gid_range.size - inventory.in_range(gid_range)
        if free <= 0:
            raise self._exhausted(file_system_id, gid_range, inventory)
        gid = inventory.nth_free(gid_range, self._random_index(free))
        inventory.reserve(gid)
        inventory.in_flight += 1
        return Reservation(file_system_id, gid)

    @staticmethod
    def _exhausted(file_system_id: str, gid_range: GidRange,
                   inventory: _Inventory) -> ResourceExhausted:
        used = inventory.in_range(gid_range)
        return ResourceExhausted(
            f"file system {file_system_id}: no free GID in range {gid_range} ({used} of "
            f"{gid_range.size} GIDs in use or being created, {len(inventory.access_points)} "
            f"access points): widen it with the StorageClass parameters {GID_RANGE_START} and "
            f"{GID_RANGE_END} (parameters of a StorageClass cannot change: create one with a "
            "wider range, or delete and recreate it), or delete unused access points")

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
        inventory.last_finished = self._clock()
        if reservation.gid is not None:
            inventory.unreserve(reservation.gid)
        if inventory.in_flight == 0 and inventory.settling:
            inventory.notify()  # no create left to wait for: the settling listing is due

    async def settle(self, cloud: Cloud, access_point: AccessPoint,
                     settles: Settles = _never) -> Settlement:
        """Whether ``access_point`` (made by this process, its GID picked here) keeps its GID
        against what the file system holds after its create (see the module docstring);
        ``settles`` tells a rival whose controller settles its GIDs too.
        Unavailable when listings keep missing it (they lag behind, or another writer deleted
        it): the caller's retry settles it again."""
        file_system_id = access_point.file_system_id
        inventory = self._inventory(file_system_id)
        pauses = iter(self._recheck_pauses)
        while True:
            # Only a listing started from now on can show what exists after the create.
            after = inventory.listings_started
            listing = await self._listing_after(cloud, file_system_id, inventory, after)
            verdict, rivals = judge(access_point, listing, settles)
            duplicates = self._duplicates(inventory, access_point)
            if verdict is Verdict.KEEP:
                return Settlement(True, duplicates=duplicates,
                                  overlapping=tuple(self.known_overlapping(
                                      file_system_id, access_point.root_path)))
            pause = next(pauses, None) if verdict is not Verdict.YIELD else None
            if pause is None:
                if verdict is Verdict.UNSEEN:
                    raise Unavailable(
                        f"file system {file_system_id}: EFS does not list the new access "
                        f"point {access_point.access_point_id} yet, so its GID cannot be "
                        "checked against the others; retry")
                inventory.gid_yields += 1
                return Settlement(False, rivals, duplicates)
            await asyncio.sleep(pause)

    @staticmethod
    def _duplicates(inventory: _Inventory,
                    access_point: AccessPoint) -> tuple[AccessPoint, ...]:
        """The other known access points with ``access_point``'s very client token."""
        if not access_point.client_token:
            return ()
        return tuple(inventory.expand_all(
            access_point_id for access_point_id in inventory.carrying(access_point.client_token)
            if access_point_id != access_point.access_point_id))

    async def _listing_after(self, cloud: Cloud, file_system_id: str, inventory: _Inventory,
                             after: int) -> Listing:
        """The first listing started after the ``after``-th; one serves every create waiting
        when it starts, and starts when ``_settling_due``."""
        waiting = (after, self._clock())
        inventory.settling.append(waiting)
        try:
            while True:
                listing = inventory.listing
                if listing is not None and listing.number > after:
                    return listing
                if not inventory.lock.locked() and self._settling_due(inventory):
                    async with inventory.lock:
                        listing = inventory.listing
                        if listing is None or listing.number <= after:
                            await self._learn(cloud, file_system_id, inventory)
                    continue
                changed = inventory.changed
                timeout = None
                unserved = inventory.unserved()
                if not inventory.lock.locked() and unserved:
                    delay, quiet = self._settling_waits(inventory)
                    due_at = min(unserved[0][1] + delay, inventory.last_finished + quiet)
                    timeout = max(0.0, due_at - self._clock())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await changed.wait()
        finally:
            inventory.settling.remove(waiting)
            if not inventory.settling:
                # Only a listing started from now on can serve the next create to settle.
                inventory.listing = None

    def _settling_waits(self, inventory: _Inventory) -> tuple[float, float]:
        """(``settle_delay``, ``settle_quiet``), stretched to the time the latest listing took:
        on a file system whose listing takes long (many pages), creates wait about as long as
        one lasts, so listing never takes much more than half the time of a burst."""
        stretch = max(1.0, inventory.last_listing_seconds / self._settle_delay)
        return self._settle_delay * stretch, self._settle_quiet * stretch

    def _settling_due(self, inventory: _Inventory) -> bool:
        """Start a settling listing now: creates wait that no listing started so far serves,
        and no other create of ours could still join them, or none has finished for a while,
        or enough wait, or the first has waited long enough."""
        unserved = inventory.unserved()
        now = self._clock()
        delay, quiet = self._settling_waits(inventory)
        return bool(unserved) and (
            inventory.in_flight == 0 or len(unserved) >= self._settle_batch
            or now - inventory.last_finished >= quiet or now - unserved[0][1] >= delay)

    def _record(self, inventory: _Inventory, access_point: AccessPoint) -> None:
        known = self._compactor.compact(access_point)
        inventory.add(access_point.access_point_id, known)
        if inventory.changed_while_learning is not None:
            inventory.changed_while_learning[access_point.access_point_id] = known

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
                gid_yields=inv.gid_yields,
            )
            for fs_id, inv in sorted(self._inventories.items())
        ]
