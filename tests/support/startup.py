"""Run a binary's own ``main()`` on an argument list, up to the moment it would serve.

Everything ``main()`` checks before serving runs for real: argparse (types, choices, bounds),
the startup validation argparse cannot express (the node's efs-utils settings, such as the
port range; the backend's local root) and the building of the typed configuration. Only
``run_controller``/``run_node`` is replaced, by a coroutine that returns at once, so nothing
listens and nothing is mounted; the configuration it would have served with is kept. The
environment is empty unless given: only the arguments count.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import efs_csi_controller.app
import efs_csi_node.app
from efs_csi_controller.__main__ import main as controller_main
from efs_csi_node.__main__ import main as node_main

MAINS = {"efs-csi-controller": controller_main, "efs-csi-node": node_main}


@dataclass(frozen=True)
class Outcome:
    status: int
    error: str
    config: Any = None  # the ControllerConfig / NodeConfig main() built, when it got that far

    @property
    def accepted(self) -> bool:
        return self.status == 0


@contextlib.contextmanager
def _no_serving(configs: list[Any]) -> Iterator[None]:
    async def serve_nothing(*, config: Any) -> None:
        configs.append(config)

    saved = efs_csi_controller.app.run_controller, efs_csi_node.app.run_node
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    efs_csi_controller.app.run_controller = serve_nothing  # type: ignore[assignment]
    efs_csi_node.app.run_node = serve_nothing  # type: ignore[assignment]
    try:
        yield
    finally:
        (efs_csi_controller.app.run_controller,  # type: ignore[assignment]
         efs_csi_node.app.run_node) = saved
        root.handlers[:] = handlers  # main() configures logging for the process
        root.setLevel(level)


def start_up(binary: str, args: list[str], environ: Mapping[str, str] | None = None) -> Outcome:
    """The exit status ``main(args)`` gives (0: it would serve), with what it printed to stderr
    and the configuration it built."""
    errors = io.StringIO()
    configs: list[Any] = []
    with _no_serving(configs), contextlib.redirect_stderr(errors):
        try:
            status = MAINS[binary](args, dict(environ or {}))
        except SystemExit as exited:
            status = exited.code if isinstance(exited.code, int) else 1
    return Outcome(status, errors.getvalue(), configs[0] if configs else None)
