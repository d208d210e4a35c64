"""The mount target's port: TLS to the TLS front (stunnel), plain NFS to the server.

    python -m testbed.datapath.front LISTEN_ADDR:PORT TLS_ADDR:PORT PLAIN_ADDR:PORT

An EFS mount target takes both on port 2049: efs-proxy's TLS (``encryptInTransit``, the
default) and the kernel's plain NFS (``encryptInTransit: "false"``). efs-utils always connects
to ``<mount target>:2049``, and nfs-ganesha 4.3 listens on ``[::]:PORT`` whatever its bind
address says, so one port cannot hold both stunnel and ganesha here. This splitter sits on the
mount target's address and sends each connection on by its first byte (22, a TLS handshake
record, or anything else), relaying both ways; a side that closes is half-closed on the other
(efs-proxy takes a reset for an error and exits, a FIN for an unmount).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

_TLS_HANDSHAKE = 0x16


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


class Splitter:
    def __init__(self, tls: tuple[str, int], plain: tuple[str, int]) -> None:
        self.tls, self.plain = tls, plain

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            first = await reader.read(1)
            if not first:
                return
            target = self.tls if first[0] == _TLS_HANDSHAKE else self.plain
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
            upstream_writer.write(first)
            await asyncio.gather(relay(reader, upstream_writer),
                                 relay(upstream_reader, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            for stream in (writer, upstream_writer):
                if stream is not None:
                    stream.close()
                    with contextlib.suppress(ConnectionError, OSError):
                        await stream.wait_closed()


async def serve(listen: tuple[str, int], tls: tuple[str, int], plain: tuple[str, int]) -> None:
    splitter = Splitter(tls, plain)
    server = await asyncio.start_server(splitter.handle, *listen, reuse_address=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    listen, tls, plain = (address(text) for text in argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(listen, tls, plain))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
