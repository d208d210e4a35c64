"""A TCP service of the test (moto's EFS API on the host's loopback) made reachable from inside
the loopback-only sandbox, through a unix socket (a file, which crosses network namespaces).

    python -m testbed.datapath.relay tcp-to-unix 127.0.0.1:PORT SOCKET   (in the sandbox)
    python -m testbed.datapath.relay unix-to-tcp SOCKET 127.0.0.1:PORT   (on the host)

Bytes are relayed both ways until either side closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from testbed.datapath.front import address, relay

Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


def _handler(open_upstream: Opener) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream = await open_upstream()
            await asyncio.gather(relay(reader, upstream), relay(upstream_reader, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()
    return handle


async def serve(mode: str, source: str, destination: str) -> None:
    if mode == "tcp-to-unix":
        host, port = address(source)
        server = await asyncio.start_server(
            _handler(lambda: asyncio.open_unix_connection(destination)), host, port,
            reuse_address=True)
    elif mode == "unix-to-tcp":
        server = await asyncio.start_unix_server(
            _handler(lambda: asyncio.open_connection(*address(destination))), source)
    else:
        raise SystemExit(f"unknown mode {mode}")
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    mode, source, destination = argv
    if mode == "unix-to-tcp":
        Path(source).unlink(missing_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(mode, source, destination))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
