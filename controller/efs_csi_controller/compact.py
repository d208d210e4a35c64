"""An access point as the GID inventory keeps it: a few fields and shared parts, not a whole
``AccessPoint`` (pure).

A file system holds up to 10,000 access points, and the controller keeps each one it knows
(``efs_csi_controller.gid``). As parsed, one is an ``AccessPoint`` with a ``PosixUser`` and a
``CreationInfo`` (their four ints, equal but separate objects), a permissions string and a tag
map: ~350 bytes beside its id, token and root strings, allocated in the middle of the listing's
page of parsed replies, which then pins the allocator's memory around it. Kept as a
``CompactAccessPoint``, it is one 5-tuple (88 bytes): its root and token strings, its GID (the
one int object of its POSIX user), a *shape* shared by every access point alike (its uid when
not its GID, secondary GIDs, the permissions of a root directory owned by its POSIX user, its
state) and its tags as one flat tuple with their repeating values shared.

Nothing is lost: ``expand`` gives back an ``AccessPoint`` equal to the one compacted (the
allocator answers whole access points, compared with what EFS answered, and a ``Settles`` test
may read any tag), so the compact form is a representation of the inventory, not a summary.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

from efs_csi.cloud import AccessPoint, CreationInfo, PosixUser

#: Shapes remembered for sharing; past this many the memory starts over (those in use stay
#: alive where they are used: only later ones are no longer shared with them).
MAX_SHARED = 4096
#: Tags whose values differ from one access point to the next (a PV's or PVC's name): kept as
#: they are, or as the client token's very string when equal (a PV name is the token).
_UNIQUE_TAGS = frozenset({"kubernetes.io/created-for/pv/name",
                          "kubernetes.io/created-for/pvc/name"})


class Shape(NamedTuple):
    """What repeats from one access point to the next, shared between them."""

    uid: int | None  # None: the uid is the GID (the driver's default)
    secondary_gids: tuple[int, ...]
    #: None: no creation info; a string: the permissions of a root directory owned by the
    #: POSIX user (as the driver makes them); else the creation info itself.
    creation: str | CreationInfo | None
    life_cycle_state: str


class CompactAccessPoint(NamedTuple):
    """One access point in the inventory, keyed by its id (see the module docstring)."""

    root_path: str
    client_token: str
    gid: int | None  # None: no POSIX user
    shape: Shape
    tags: tuple[str, ...]  # key, value, key, value, ...

    def expand(self, access_point_id: str, file_system_id: str) -> AccessPoint:
        """The ``AccessPoint`` this was made from (equal to it)."""
        shape, gid = self.shape, self.gid
        posix_user = creation_info = None
        if gid is not None:
            uid = gid if shape.uid is None else shape.uid
            posix_user = PosixUser(uid, gid, shape.secondary_gids)
            if isinstance(shape.creation, str):
                creation_info = CreationInfo(uid, gid, shape.creation)
        if isinstance(shape.creation, CreationInfo):
            creation_info = shape.creation
        tags = self.tags
        return AccessPoint(access_point_id, file_system_id, self.root_path, posix_user,
                           creation_info, self.client_token,
                           {tags[index]: tags[index + 1] for index in range(0, len(tags), 2)},
                           shape.life_cycle_state)

    def tag(self, key: str) -> str | None:
        tags = self.tags
        for index in range(0, len(tags), 2):
            if tags[index] == key:
                return tags[index + 1]
        return None


class Compactor:
    """Makes ``CompactAccessPoint``s, sharing equal shapes and repeating tag values."""

    def __init__(self, max_shared: int = MAX_SHARED) -> None:
        self._max_shared = max_shared
        self._shapes: dict[tuple[object, ...], Shape] = {}

    def compact(self, access_point: AccessPoint) -> CompactAccessPoint:
        posix_user, info = access_point.posix_user, access_point.creation_info
        gid = uid = None
        if posix_user is not None:
            gid = posix_user.gid
            uid = None if posix_user.uid == gid else posix_user.uid
        creation: str | CreationInfo | None = info
        if (info is not None and posix_user is not None and info.owner_uid == posix_user.uid
                and info.owner_gid == posix_user.gid):
            creation = sys.intern(info.permissions)
        shape = self._shared(uid, posix_user.secondary_gids if posix_user else (), creation,
                             access_point.life_cycle_state)
        token = access_point.client_token
        tags: tuple[str, ...] = ()
        if access_point.tags:
            tags = tuple(part for key, value in access_point.tags.items()
                         for part in (sys.intern(key), self._tag_value(key, value, token)))
        return CompactAccessPoint(access_point.root_path, token, gid, shape, tags)

    @staticmethod
    def _tag_value(key: str, value: str, token: str) -> str:
        if key in _UNIQUE_TAGS:
            return token if value == token else value
        return sys.intern(value)

    def _shared(self, uid: int | None, secondary_gids: tuple[int, ...],
                creation: str | CreationInfo | None, life_cycle_state: str) -> Shape:
        # Looked up by a plain tuple (equal to the shape, and quicker to make): a listing
        # compacts every access point it shows, 10,000 on a full file system.
        key = (uid, secondary_gids, creation, life_cycle_state)
        known = self._shapes.get(key)
        if known is not None:
            return known
        shape = Shape(uid, secondary_gids, creation, sys.intern(life_cycle_state))
        if isinstance(creation, CreationInfo):
            return shape  # its owner is not its POSIX user: rare, and unlike any other
        if len(self._shapes) >= self._max_shared:
            self._shapes.clear()
        self._shapes[shape] = shape
        return shape
