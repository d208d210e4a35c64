"""One operation per volume name or volume id at a time.

csi-provisioner retries a call it thinks timed out while the first is still running; the
later call is answered ABORTED (the provisioner retries again later) instead of racing the
first one through the EFS API. Different volumes never wait for each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from efs_csi.errors import Aborted


class KeysInFlight:
    """The keys (volume name, access point id) with an operation in flight; a second operation
    on one is refused, never queued (see ``efs_csi.rpc.hook.CallsInFlight`` for the family)."""

    def __init__(self) -> None:
        self._busy: set[str] = set()

    @contextmanager
    def hold(self, key: str, what: str) -> Iterator[None]:
        """Hold ``key`` for the block; Aborted naming ``what`` when it is already held."""
        if key in self._busy:
            raise Aborted(f"an operation on {what} is already in progress; retry later")
        self._busy.add(key)
        try:
            yield
        finally:
            self._busy.discard(key)

    def __len__(self) -> int:
        return len(self._busy)
