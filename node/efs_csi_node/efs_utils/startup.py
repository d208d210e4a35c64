"""What the node does with efs-utils at start.

``overrides_arg`` is the argparse ``type=`` of ``--efs-utils-conf-overrides`` (exit 2 naming
the flag on bad input). ``EfsUtilsConfig`` is what the flags say about efs-utils;
``prepare_efs_utils`` renders the file from it, writes the config directory, and removes what
mount.efs processes killed before this start left in the state directory (no mount of ours
runs yet: ``efs_csi.mounting.efs_leftovers``);
``efs_utils_background`` returns the tasks to run for the server's lifetime: the watchdog
supervisor, and the orphan reaper when orphans can reach us (PID 1 or a subreaper).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from efs_csi.logging import get_logger
from efs_csi.mounting.efs_leftovers import EFS_UTILS_STATE_DIR, remove_leftovers
from efs_csi_node.efs_utils.config import (
    ConfigError,
    EfsUtilsSettings,
    Override,
    parse_overrides,
    render,
    tls_weakening,
)
from efs_csi_node.efs_utils.prepare import Prepared, prepare_config_dir
from efs_csi_node.efs_utils.reaper import ChildRegistry, OrphanReaper, adopts_orphans, reap_orphans
from efs_csi_node.efs_utils.watchdog import WatchdogOptions, supervise_watchdog

# Where the node image keeps the files efs-utils installs into /etc/amazon/efs (the CA bundle),
# since the host directory mounted there hides them.
DEFAULT_STATIC_DIR = Path("/etc/amazon/efs-static-files")

_log = get_logger("node.efs_utils")


def overrides_arg(text: str) -> tuple[Override, ...]:
    try:
        return parse_overrides(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True)
class EfsUtilsConfig:
    """efs-utils' file (``settings``), the host directory it goes to, and where an older
    release kept efs-utils' state (migrated once; None: nothing to migrate)."""

    settings: EfsUtilsSettings
    config_dir: Path
    legacy_config_dir: Path | None = None
    state_dir: Path = EFS_UTILS_STATE_DIR


async def prepare_efs_utils(config: EfsUtilsConfig, *,
                            static_dir: Path | None = DEFAULT_STATIC_DIR) -> Prepared:
    """Render efs-utils.conf (ConfigError naming the flag) and prepare the directory."""
    text = render(config.settings)
    weakening = tls_weakening(config.settings)
    if weakening:  # rendered: so the operator allowed it (--allow-insecure-efs-utils-conf)
        _log.warning("efs-utils.conf overrides weaken TLS to EFS, as allowed by "
                     "--allow-insecure-efs-utils-conf", overrides=weakening)
    prepared = await asyncio.to_thread(
        prepare_config_dir, config.config_dir, text, legacy_dir=config.legacy_config_dir,
        static_dir=static_dir)
    _log.info("efs-utils configured", conf=str(prepared.conf_path),
              migrated_from=str(prepared.migrated_from) if prepared.migrated_from else None,
              static_files=list(prepared.static_files_installed))
    if prepared.removed_host_ca:
        _log.error("the image has no efs-utils CA bundle; the host's copy was removed rather "
                   "than trusted: TLS mounts fail until the image provides one",
                   static_dir=str(static_dir))
    removed = await asyncio.to_thread(remove_leftovers, config.state_dir)
    if removed:
        _log.warning("removed what mount.efs processes killed before this start left",
                     state_dir=str(config.state_dir), removed=removed)
    return prepared


def efs_utils_background(*, registry: ChildRegistry | None = None,
                         options: WatchdogOptions | None = None,
                         reap: bool | None = None,
                         on_watchdog_exit: Callable[[int | None, float], None] | None = None,
                         ) -> list[Callable[[], Awaitable[None]]]:
    """Tasks for ``efs_csi.rpc.server.serve``; ``reap=None``: reap when ``adopts_orphans()``;
    ``on_watchdog_exit``: told of every watchdog exit before its restart (the metric)."""
    owned = registry if registry is not None else ChildRegistry()

    # Named functions, not partials: the server logs a failed background task by name.
    async def efs_utils_watchdog() -> None:
        await supervise_watchdog(options, registry=owned, on_exit=on_watchdog_exit)

    async def orphan_reaper() -> None:
        await reap_orphans(OrphanReaper(owned))

    tasks: list[Callable[[], Awaitable[None]]] = [efs_utils_watchdog]
    if reap if reap is not None else adopts_orphans():
        tasks.append(orphan_reaper)
    return tasks
