"""The apps that use our volumes during the flow, and what their I/O logs show (pure).

A writer appends ``<epoch seconds> <sequence>`` to ``/data/<writer>.log`` five times a second; a
reader on another node, with the volume mounted read-only, prints ``R <epoch seconds> <last line
of the writer's log>`` twice a second. Either prints ``IOERR ...`` when an operation fails. So
after a disruption (the node plugin deleted, stopped, upgraded) the logs say whether I/O went on
through it: writes and fresh reads inside the disruption's window, no error, and the longest
pause (a figure, never a pass mark).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

WRITER_SCRIPT = """\
i=0
while true; do
  i=$((i + 1))
  echo "$(date +%s.%N) $i" >> "/data/${APP_NAME}.log" || echo "IOERR write $i $(date +%s)"
  sleep 0.2
done
"""

READER_SCRIPT = """\
until [ -e "/data/${WRITER}.log" ]; do sleep 0.2; done
while true; do
  line="$(tail -n 1 "/data/${WRITER}.log")" || echo "IOERR read $(date +%s)"
  echo "R $(date +%s.%N) ${line}"
  sleep 0.5
done
"""


@dataclass(frozen=True)
class Sample:
    at: float  # when it was written (writer) or read (reader)
    sequence: int  # the writer's sequence number written, or the last one read


def writer_samples(log: str) -> list[Sample]:
    samples = []
    for line in log.splitlines():
        parts = line.split()
        if len(parts) == 2:
            samples.append(Sample(float(parts[0]), int(parts[1])))
    return samples


def reader_samples(output: str) -> list[Sample]:
    samples = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "R":
            samples.append(Sample(float(parts[1]), int(parts[3])))
    return samples


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("IOERR")]


@dataclass(frozen=True)
class Continuity:
    """How I/O went during ``[start, end]``."""

    operations: int  # operations that completed inside the window
    progressed: bool  # the sequence moved on inside the window (new data written, or read)
    continued_after: bool  # an operation completed after the window: the app still runs
    longest_pause_s: float  # longest time without an operation, around the window

    @property
    def went_on(self) -> bool:
        return self.operations > 0 and self.progressed and self.continued_after


def continuity(samples: Iterable[Sample], start: float, end: float) -> Continuity:
    ordered = sorted(samples, key=lambda sample: sample.at)
    inside = [s for s in ordered if start <= s.at <= end]
    before = [s for s in ordered if s.at < start]
    after = [s for s in ordered if s.at > end]
    around = before[-1:] + inside + after[:1]
    pauses = [b.at - a.at for a, b in pairwise(around)]
    first = before[-1].sequence if before else (inside[0].sequence if inside else 0)
    return Continuity(
        operations=len(inside),
        progressed=bool(inside) and max(s.sequence for s in inside) > first,
        continued_after=bool(after),
        longest_pause_s=round(max(pauses, default=0.0), 2),
    )
