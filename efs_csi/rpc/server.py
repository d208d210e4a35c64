"""Serving CSI services on a ``unix://`` or ``tcp://`` endpoint, with a graceful stop.

On SIGTERM or SIGINT the server drains: the unix socket file is removed (no new connections),
calls that arrive on open connections answer UNAVAILABLE, calls already running get up to
``grace_period`` seconds to finish, then everything is closed and ``serve`` returns normally
so the process exits 0. A stale socket file left by a crashed process is removed at start; a
socket someone is still listening on is not stolen, and nothing that is not a socket is ever
removed: an endpoint that cannot be served on raises ``EndpointUnusable`` naming it, which the
binaries turn into a one-line error and exit status 2 (``efs_csi.serving.run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from grpclib.server import Server

from efs_csi.logging import get_logger
from efs_csi.rpc.hook import (
    CallsInFlight,
    RpcObserver,
    ServiceBase,
    instrument,
    unimplemented_fallback,
)
from efs_csi.rpc.supervision import RestartPolicy, Task, supervise, task_name

_log = get_logger("efs_csi.server")

BackgroundTask = Task


@dataclass(frozen=True)
class Endpoint:
    """Where to listen: a unix socket path, or a TCP host and port."""

    path: Path | None = None
    host: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.path else f"tcp://{self.host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """Parse ``unix:///abs/path``, ``unix:/abs/path`` or ``tcp://host:port``."""
    if text.startswith("unix:"):
        raw = text.removeprefix("unix:")
        path = raw.removeprefix("//")  # unix:///abs/path has an empty authority
        if not path.startswith("/") or path == "/":
            raise ValueError(f"unix endpoint needs an absolute socket path: {text!r}")
        return Endpoint(path=Path(path))
    if text.startswith("tcp://"):
        host, sep, port = text.removeprefix("tcp://").rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"tcp endpoint must be tcp://host:port: {text!r}")
        return Endpoint(host=host, port=int(port))
    raise ValueError(f"endpoint must start with unix:// or tcp://: {text!r}")


class EndpointUnusable(Exception):
    """The endpoint cannot be served on (a file in the way, a live socket, no permission);
    the message names it and says why."""


def _socket_is_live(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def remove_stale_socket(path: Path) -> None:
    """Remove a socket file nobody listens on; refuse to touch anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise EndpointUnusable(f"{path} exists and is not a socket; refusing to remove it")
    if _socket_is_live(path):
        raise EndpointUnusable(f"another process is serving on {path}")
    path.unlink()
    _log.info("removed stale socket", path=str(path))


@dataclass
class ServeOptions:
    grace_period: float = 30.0
    observer: RpcObserver | None = None
    restarts: RestartPolicy = field(default_factory=RestartPolicy)


async def _start(server: Server, endpoint: Endpoint) -> None:
    try:
        if endpoint.path is not None:
            endpoint.path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_socket(endpoint.path)
            await server.start(path=str(endpoint.path))
        else:
            await server.start(endpoint.host, endpoint.port)
    except OSError as exc:  # a parent that is a file, no permission, an address in use, ...
        where = exc.filename or endpoint
        raise EndpointUnusable(f"cannot serve on {endpoint}: {exc.strerror or exc} "
                               f"({where})") from exc


def _install_stop_signals(stop: asyncio.Event) -> Callable[[], None]:
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)

    def uninstall() -> None:
        for signum in signals:
            loop.remove_signal_handler(signum)

    return uninstall


async def serve(
    services: Sequence[ServiceBase],
    endpoint: Endpoint,
    *,
    options: ServeOptions | None = None,
    startup: BackgroundTask | None = None,
    background: Sequence[BackgroundTask] = (),
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set), then drain and return.

    ``startup`` runs once after the socket is listening (Probe answers not-ready until it
    finishes); ``background`` tasks run for the server's lifetime and are cancelled at stop.
    Both are supervised (``efs_csi.rpc.supervision``): a failure is logged and the task restarted.
    """
    options = options or ServeOptions()
    in_flight = CallsInFlight()
    server = Server([instrument(service, in_flight, options.observer) for service in services])
    # See efs_csi.rpc.hook._UnimplementedFallback for why the method table is replaced.
    server._mapping = unimplemented_fallback(server._mapping)
    stop = stop or asyncio.Event()
    uninstall = _install_stop_signals(stop)
    try:
        await _start(server, endpoint)
    except BaseException:
        uninstall()
        raise
    _log.info("serving", endpoint=str(endpoint))
    # What exists now (modules, the CSI messages, the parts) lives as long as the process:
    # kept out of the collector's full scans, which otherwise walk all of it again and again
    # under load (a measurable share of the controller's CPU per call). Freezing again once
    # the controller's AWS client exists (built after serving) was measured: no difference.
    gc.freeze()
    tasks = [asyncio.create_task(supervise(task, options.restarts), name=task_name(task))
             for task in ([startup] if startup else []) + list(background)]
    try:
        await stop.wait()
    finally:
        uninstall()
        await _drain(server, endpoint, in_flight, options.grace_period)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        _log.info("stopped", endpoint=str(endpoint))


async def _drain(server: Server, endpoint: Endpoint, in_flight: CallsInFlight,
                 grace: float) -> None:
    in_flight.draining = True
    if endpoint.path is not None:
        with contextlib.suppress(FileNotFoundError):
            endpoint.path.unlink()
    _log.info("draining", in_flight=in_flight.count, grace_period_s=grace)
    try:
        await asyncio.wait_for(in_flight.wait_idle(), timeout=grace)
    except TimeoutError:
        _log.warning("grace period over; cancelling calls", in_flight=in_flight.count)
    server.close()
    await server.wait_closed()
