"""One socket that looks like a single-binary CSI plugin, for csi-sanity.

csi-sanity asks the *node* endpoint's Identity whether a Controller service exists, and skips
its full node lifecycle specs ("should work", "should be idempotent") when it does not. Our
node rightly does not advertise CONTROLLER_SERVICE (in Kubernetes the controller is another
pod), so this test-only router forwards Identity and Controller calls to the controller
binary and Node calls to the node binary, byte for byte, and csi-sanity runs every spec
against the two real processes. Every Identity call is also put to the node binary, and its
answers are kept (``NodeIdentity``), so the one run judges both binaries' Identity service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpclib.const
from grpclib.client import Channel
from grpclib.encoding.base import CodecBase
from grpclib.server import Server, Stream

from efs_csi import csi


class RawCodec(CodecBase):
    """Passes serialized protobuf through untouched."""

    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        return bytes(message)

    def decode(self, data: bytes, message_type: Any) -> bytes:
        return data


def _paths(service: type[Any]) -> list[str]:
    return list(service.__mapping__(service()).keys())


@dataclass
class NodeIdentity:
    """What the node binary answered to each Identity call csi-sanity made (path, reply), or
    the error it raised instead."""

    answers: list[tuple[str, bytes | Exception]] = field(default_factory=list)


async def _call(channel: Channel, path: str, request: bytes, timeout: float | None,
                metadata: Any) -> bytes:
    async with channel.request(path, grpclib.const.Cardinality.UNARY_UNARY, bytes, bytes,
                               timeout=timeout, metadata=metadata) as call:
        await call.send_message(request, end=True)
        reply = await call.recv_message()
        await call.recv_trailing_metadata()
    assert reply is not None
    return reply  # type: ignore[no-any-return]


def _forwarder(channel: Channel, path: str, mirror: Channel | None = None,
               answers: NodeIdentity | None = None
               ) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
    async def forward(stream: Stream[Any, Any]) -> None:
        request = await stream.recv_message()
        timeout = stream.deadline.time_remaining() if stream.deadline else None
        reply = await _call(channel, path, request, timeout, stream.metadata)
        if mirror is not None and answers is not None:
            try:
                answers.answers.append((path, await _call(mirror, path, request, timeout,
                                                          stream.metadata)))
            except Exception as exc:  # judged by the test, not by csi-sanity
                answers.answers.append((path, exc))
        await stream.send_message(reply)

    return forward


class _Routes:
    def __init__(self, routes: dict[str, grpclib.const.Handler]) -> None:
        self._routes = routes

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return self._routes


@asynccontextmanager
async def combined_endpoint(socket: Path, controller: Path, node: Path,
                            node_identity: NodeIdentity) -> AsyncIterator[Path]:
    codec = RawCodec()
    to_controller = Channel(path=str(controller), codec=codec)
    to_node = Channel(path=str(node), codec=codec)
    routes: dict[str, grpclib.const.Handler] = {}
    for service, channel in ((csi.IdentityBase, to_controller),
                             (csi.ControllerBase, to_controller), (csi.NodeBase, to_node)):
        identity = service is csi.IdentityBase
        for path in _paths(service):
            forward = _forwarder(channel, path, to_node if identity else None,
                                 node_identity if identity else None)
            routes[path] = grpclib.const.Handler(
                forward, grpclib.const.Cardinality.UNARY_UNARY, bytes, bytes)
    server = Server([_Routes(routes)], codec=codec)
    await server.start(path=str(socket))
    try:
        yield socket
    finally:
        server.close()
        await server.wait_closed()
        to_controller.close()
        to_node.close()
