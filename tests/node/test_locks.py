"""Per-key serialisation and the mount bound: queue, ABORTED only past the deadline."""

from __future__ import annotations

import asyncio

import pytest

from efs_csi.errors import Aborted
from efs_csi_node.locks import KeyLocksInFlight, MountSlots


@pytest.mark.asyncio
async def test_same_key_is_serialised_other_keys_are_not() -> None:
    locks = KeyLocksInFlight(deadline=lambda: None)
    order: list[str] = []
    gate, first_in, second_waiting = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with locks.hold(["volume:a"]):
            order.append("first-in")
            first_in.set()
            await gate.wait()
            order.append("first-out")

    async def second() -> None:
        # Nothing yields between this and waiting for the lock: when the test sees the event,
        # this task is queued on the lock.
        second_waiting.set()
        async with locks.hold(["volume:a"]):
            order.append("second-in")

    async def other() -> None:
        async with locks.hold(["volume:b"]):
            order.append("other")

    tasks = [asyncio.create_task(first())]
    await first_in.wait()
    tasks += [asyncio.create_task(second()), asyncio.create_task(other())]
    await second_waiting.wait()
    await tasks[2]  # another key: not held up by the first
    assert order == ["first-in", "other"]
    gate.set()
    await asyncio.gather(*tasks)
    assert order == ["first-in", "other", "first-out", "second-in"]
    assert len(locks) == 0  # nothing kept for idle keys


@pytest.mark.asyncio
async def test_waiting_past_the_deadline_is_aborted() -> None:
    locks = KeyLocksInFlight(deadline=lambda: 0.05)
    gate, holding = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with locks.hold(["path:/t"]):
            holding.set()
            await gate.wait()

    task = asyncio.create_task(holder())
    await holding.wait()
    with pytest.raises(Aborted, match="/t"):
        async with locks.hold(["path:/t"]):
            pass
    gate.set()
    await task
    assert len(locks) == 0


@pytest.mark.asyncio
async def test_mount_slots_queue_then_abort_at_deadline() -> None:
    deadline: list[float | None] = [None]
    slots = MountSlots(2, deadline=lambda: deadline[0])
    running = 0
    peak = 0
    tried = 0
    gate, all_tried = asyncio.Event(), asyncio.Event()

    async def mount() -> None:
        nonlocal running, peak, tried
        tried += 1
        if tried == 5:  # nothing yields from here to the slot: every task has asked for one
            all_tried.set()
        async with slots.slot():
            running += 1
            peak = max(peak, running)
            await gate.wait()
            running -= 1

    tasks = [asyncio.create_task(mount()) for _ in range(5)]
    await all_tried.wait()
    assert running == 2  # the rest queue
    deadline[0] = 0.02
    with pytest.raises(Aborted, match="2 mount operations"):
        async with slots.slot():
            pass
    gate.set()
    await asyncio.gather(*tasks)
    assert peak == 2


@pytest.mark.asyncio
async def test_zero_means_unbounded() -> None:
    slots = MountSlots(0, deadline=lambda: 0.0)
    async with slots.slot(), slots.slot():
        pass
