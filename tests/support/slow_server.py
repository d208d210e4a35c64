"""A minimal CSI server process whose Probe takes a given time to answer.

Used to prove the server's SIGTERM drain on a real process: the real ``efs_csi.rpc.server.serve``
and signal handling, with a deliberately slow handler (no production RPC is slow on demand)
that prints "probe in flight" on stdout as it starts.
Run as ``python -m tests.support.slow_server unix:///path/csi.sock SECONDS``.
"""

from __future__ import annotations

import asyncio
import sys

from efs_csi import csi
from efs_csi.logging import configure_logging
from efs_csi.rpc.identity import IdentityService, Readiness
from efs_csi.rpc.server import ServeOptions, parse_endpoint, serve


class SlowProbeIdentity(IdentityService):
    def __init__(self, readiness: Readiness, delay: float) -> None:
        super().__init__(readiness, controller=False)
        self._delay = delay

    async def probe(self, message: csi.ProbeRequest) -> csi.ProbeResponse:
        print("probe in flight", flush=True)  # the test signals only once a call is running
        await asyncio.sleep(self._delay)
        return await super().probe(message)


async def main(endpoint: str, delay: float) -> None:
    readiness = Readiness()
    readiness.set_ready()
    await serve([SlowProbeIdentity(readiness, delay)], parse_endpoint(endpoint),
                options=ServeOptions(grace_period=delay * 4))


if __name__ == "__main__":
    configure_logging("json", "info")
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
