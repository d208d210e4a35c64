"""`make demo`: start both binaries on their own sockets and show them answering.

(The full provisioning-and-mount walk-through replaces this with the end-to-end issue.)
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from efs_csi import csi  # noqa: E402
from tests.support.processes import start_binary  # noqa: E402


async def show(kind: str, workdir: Path) -> None:
    started = time.monotonic()
    running = await start_binary(kind, workdir)
    try:
        channel = running.channel()
        try:
            identity = csi.IdentityStub(channel)
            info = await identity.get_plugin_info(csi.GetPluginInfoRequest())
            caps = await identity.get_plugin_capabilities(csi.GetPluginCapabilitiesRequest())
            probe = await identity.probe(csi.ProbeRequest())
        finally:
            channel.close()
        kinds = ", ".join(c.service.type.name for c in caps.capabilities if c.service)
        print(f"  {kind:<10} {info.name} {info.vendor_version}  ready={probe.ready}  "
              f"capabilities=[{kinds}]  ({time.monotonic() - started:.2f}s)")
    finally:
        code = await running.stop(signal.SIGTERM)
        print(f"  {kind:<10} stopped with exit code {code}; socket removed: "
              f"{not running.socket.exists()}")
        if code != 0:
            raise SystemExit(f"{kind} exited with {code}")


async def main() -> None:
    print("efs-csi demo: both binaries, Identity service")
    with tempfile.TemporaryDirectory(prefix="efs-csi-demo-") as tmp:
        workdir = Path(tmp)
        for kind in ("controller", "node"):
            (workdir / kind).mkdir()
            await show(kind, workdir / kind)
    print("demo finished: nothing left behind")


if __name__ == "__main__":
    asyncio.run(main())
