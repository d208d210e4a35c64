"""The controller's libraries alone, without the driver: the floor under its start-up rows.

Run by ``bench/controller_floors.py`` with the interpreter of the controller's image-like venv,
as the image runs the controller (``-OO``, the chart's environment), and with nothing of this
repository on ``sys.path``:

    python -OO bench/_libraries_alone.py ENDPOINT_URL

It imports what the controller's serving stack imports before it serves (asyncio with OpenSSL,
grpclib, betterproto2, structlog, prometheus_client: not the CSI messages, not the driver's
modules), then the AWS SDK, builds an EFS client on a session that loads botocore's endpoints
data as the controller's does (``lean_data_loader``: the one piece of the driver used here, as
without it the SDK alone costs ~6 MiB more) and makes one call. It prints a line when the call
is answered (the parent times exec to that line), then, after ``IDLE_S`` seconds, its RSS as
JSON.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys

IDLE_S = 3.0
#: What the controller's serving stack imports before it serves, for their cost alone.
SERVING_STACK = ("ssl", "grpclib.client", "grpclib.server", "betterproto2", "structlog",
                 "prometheus_client")


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def main(endpoint: str) -> None:
    from aiobotocore.session import get_session

    from efs_csi.adapters.aws.endpoints_data import lean_data_loader

    session = get_session()
    lean_data_loader(session)
    async with session.create_client("efs", region_name="us-east-1",
                                     endpoint_url=endpoint) as client:
        await client.describe_file_systems()
        print("answered", flush=True)
        await asyncio.sleep(IDLE_S)
        print(json.dumps({"rss_mib": rss_mib(), "optimize": sys.flags.optimize}), flush=True)


if __name__ == "__main__":
    for module in SERVING_STACK:
        importlib.import_module(module)
    asyncio.run(main(sys.argv[1]))
