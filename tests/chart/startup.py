"""Run a binary's own ``main()`` on an argument list, up to the moment it would serve.

Everything ``main()`` checks before serving runs for real: argparse (types, choices, bounds),
the startup validation argparse cannot express (the node's efs-utils settings, such as the
port range; the backend's local root) and the building of the typed configuration. Only
``run_controller``/``run_node`` is replaced, by a coroutine that returns at once, so nothing
listens and nothing is mounted. The environment is empty: only the chart's arguments count.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import efs_csi_controller.app
import efs_csi_node.app
from efs_csi_controller.__main__ import main as controller_main
from efs_csi_node.__main__ import main as node_main

MAINS = {"efs-csi-controller": controller_main, "efs-csi-node": node_main}


@dataclass(frozen=True)
class Outcome:
    status: int
    error: str

    @property
    def accepted(self) -> bool:
        return self.status == 0


async def _serve_nothing(*, config: object) -> None:
    return None


@contextlib.contextmanager
def _no_serving() -> Iterator[None]:
    saved = efs_csi_controller.app.run_controller, efs_csi_node.app.run_node
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    efs_csi_controller.app.run_controller = _serve_nothing  # type: ignore[assignment]
    efs_csi_node.app.run_node = _serve_nothing  # type: ignore[assignment]
    try:
        yield
    finally:
        (efs_csi_controller.app.run_controller,  # type: ignore[assignment]
         efs_csi_node.app.run_node) = saved
        root.handlers[:] = handlers  # main() configures logging for the process
        root.setLevel(level)


def start_up(binary: str, args: list[str]) -> Outcome:
    """The exit status ``main(args)`` gives (0: it would serve), with what it printed."""
    errors = io.StringIO()
    with _no_serving(), contextlib.redirect_stderr(errors):
        try:
            status = MAINS[binary](args, {})
        except SystemExit as exited:
            status = exited.code if isinstance(exited.code, int) else 1
    return Outcome(status, errors.getvalue())
