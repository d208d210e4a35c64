"""Running csi-sanity (kubernetes-csi/csi-test v5.4.0) and reading its verdict."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.ci import tool

_SUMMARY = re.compile(r"Ran (\d+) of (\d+) Specs.*?\n.*?(SUCCESS|FAIL)!? -- (\d+) Passed \| "
                      r"(\d+) Failed \| (\d+) Pending \| (\d+) Skipped", re.S)


@dataclass(frozen=True)
class SanityResult:
    returncode: int
    output: str
    passed: int
    failed: int
    skipped: int
    ran: int = 0  # specs run, of ``total`` csi-sanity has
    total: int = 0
    pending: int = 0

    @property
    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


async def run_sanity(endpoint: Path, work: Path, *, focus: str | None = None,
                     skip: str | None = None, controller_endpoint: Path | None = None,
                     extra: Sequence[str] = (), timeout: float = 600) -> SanityResult:
    binary = tool("csi-sanity", "CSI_SANITY")
    args = [binary, f"--csi.endpoint={endpoint}", "--ginkgo.no-color",
            f"--csi.mountdir={work / 'mount'}", f"--csi.stagingdir={work / 'staging'}"]
    if controller_endpoint is not None:
        args.append(f"--csi.controllerendpoint={controller_endpoint}")
    if focus:
        args.append(f"--ginkgo.focus={focus}")
    if skip:
        args.append(f"--ginkgo.skip={skip}")
    args.extend(extra)
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout)
    output = stdout.decode(errors="replace")
    match = _SUMMARY.search(output)
    if match is None:
        return SanityResult(process.returncode or 1, output, 0, 0, 0)
    return SanityResult(process.returncode if process.returncode is not None else 1, output,
                        passed=int(match.group(4)), failed=int(match.group(5)),
                        skipped=int(match.group(7)), ran=int(match.group(1)),
                        total=int(match.group(2)), pending=int(match.group(6)))
