"""Why a TLS mount failed, when the mount target's certificate is the reason.

efs-proxy (efs-utils 3.2.0) retries a refused TLS handshake until its start-up deadline and
then only logs "Connect attempt failed - Timeout"; mount.nfs4 sees a tunnel that never
answers, and the caller a timed-out or failed mount with no word of certificates. After such a
mount the node redoes the handshake efs-proxy was configured for (its configuration file:
``connect``, ``CAfile``, ``checkHost``) once, with Python's ssl, and names the refusal: an
unknown issuer, or a certificate for another name.

Parsing is pure; ``probe`` connects (time-limited) from the node's own network namespace, where
efs-proxy connected from.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from efs_csi.mounting.efs_leftovers import file_safe_mount_point

_LINE = re.compile(r"^\s*(?P<key>[A-Za-z_]+)\s*=\s*(?P<value>.*?)\s*$")


@dataclass(frozen=True)
class TunnelTarget:
    host: str
    port: int
    ca_file: str
    check_host: str


def parse_tunnel_config(text: str) -> TunnelTarget | None:
    """The TLS peer of an efs-proxy/stunnel configuration; None for a plain tunnel."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            values.setdefault(match.group("key"), match.group("value"))
    connect, ca_file, check_host = (values.get(key) for key in ("connect", "CAfile", "checkHost"))
    if not connect or not ca_file or not check_host:
        return None
    host, _, port = connect.rpartition(":")
    if not host or not port.isdigit():
        return None
    return TunnelTarget(host, int(port), ca_file, check_host)


def tunnel_config_for(state_dir: Path, target: Path) -> Path | None:
    """The tunnel configuration mount.efs wrote for ``target`` (the newest, if several)."""
    stem = re.escape(file_safe_mount_point(target))
    pattern = re.compile(rf"^stunnel-config\.fs-[0-9a-f]+\.{stem}\.\d+$")
    with contextlib.suppress(OSError):
        found = [entry for entry in state_dir.iterdir() if pattern.match(entry.name)]
        if found:
            return max(found, key=lambda entry: entry.stat().st_mtime)
    return None


async def probe(peer: TunnelTarget, timeout: float = 5.0) -> str | None:
    """A sentence naming why the peer's certificate is refused; None when it is accepted or
    the peer cannot be reached (then the certificate is not what failed)."""
    try:
        context = ssl.create_default_context(cafile=peer.ca_file)
    except (OSError, ssl.SSLError) as exc:
        return f"efs-utils' CA file {peer.ca_file} cannot be used: {exc}"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(
            peer.host, peer.port, ssl=context, server_hostname=peer.check_host), timeout)
    except ssl.SSLCertVerificationError as exc:
        return (f"the mount target {peer.host}:{peer.port} presented a certificate that TLS "
                f"refuses for {peer.check_host}: {exc.verify_message}")
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return None


async def certificate_refusal(state_dir: Path, target: Path) -> str | None:
    """``probe`` for the tunnel mount.efs configured for ``target``, if there is one."""
    path = tunnel_config_for(state_dir, target)
    if path is None:
        return None
    try:
        text = await asyncio.to_thread(path.read_text)
    except OSError:
        return None
    peer = parse_tunnel_config(text)
    return await probe(peer) if peer is not None else None
