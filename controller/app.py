"""Composition root of efs-csi-controller: builds the services and serves them."""

from __future__ import annotations

import argparse

from efs_csi.identity import IdentityService, Readiness
from efs_csi.server import ServeOptions, serve


async def run_controller(args: argparse.Namespace) -> None:
    readiness = Readiness()

    async def startup() -> None:
        readiness.set_ready()

    await serve(
        [IdentityService(readiness, controller=True)],
        args.endpoint,
        options=ServeOptions(grace_period=args.shutdown_grace_period),
        startup=startup,
    )
