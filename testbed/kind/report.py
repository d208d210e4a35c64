"""What the flow found: named checks (passed or not, with what was seen), figures (failover
time, restart delays, ...), and the time each step took. Printed as it goes (PASS/FAIL lines, as
users read them) and written as JSON for ``tests/kind``, which turns each check into a test.

A step that raises is recorded as a failed check named after the step, and the flow goes on
with the next one: one broken step must not hide what the others would show.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    steps: list[tuple[str, float]] = field(default_factory=list)
    out: TextIO = field(default=sys.stdout, repr=False)

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, passed, detail))
        self._print(f"{'PASS' if passed else 'FAIL'}: {name}" + (f" ({detail})" if detail else ""))
        return passed

    def figure(self, name: str, value: Any) -> None:
        self.figures[name] = value
        self._print(f"figure: {name} = {value}")

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step; an exception in it fails check ``step <name>`` and is not raised."""
        started = time.monotonic()
        self._print(f"== {name}")
        try:
            yield
        except Exception as exc:  # recorded, and the flow goes on
            self.check(f"step {name} ran to its end", False,
                       "".join(traceback.format_exception_only(exc)).strip())
        finally:
            self.steps.append((name, round(time.monotonic() - started, 1)))

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def table(self) -> str:
        width = max((len(name) for name, _ in self.steps), default=4)
        lines = [f"{'step':<{width}}  seconds"]
        lines += [f"{name:<{width}}  {seconds:7.1f}" for name, seconds in self.steps]
        lines.append(f"{'total':<{width}}  {sum(s for _, s in self.steps):7.1f}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"checks": [asdict(check) for check in self.checks], "figures": self.figures,
                "steps": [{"name": name, "seconds": seconds} for name, seconds in self.steps]}

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)
