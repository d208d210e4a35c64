"""Reading efs-proxy's configuration for the TLS peer the node checks after a failed mount
(efs_csi.mounting.tls_probe). The handshake itself, against a mount target with a certificate
for another file system, is in tests/datapath (test_a_wrong_certificate_...)."""

from __future__ import annotations

from pathlib import Path

from efs_csi.mounting.tls_probe import TunnelTarget, parse_tunnel_config, tunnel_config_for

# As mount.efs writes it (efs_utils_common/proxy.py), abridged.
CONFIG = """fips = no
foreground = yes
socket = l:SO_REUSEADDR=yes
[efs]
client = yes
accept = 127.0.0.1:20123
connect = fs-12345678.efs.us-east-1.amazonaws.com:2049
verify = 2
CAfile = /etc/amazon/efs/efs-utils.crt
checkHost = fs-12345678.efs.us-east-1.amazonaws.com
"""


def test_the_tls_peer_of_a_tunnel() -> None:
    assert parse_tunnel_config(CONFIG) == TunnelTarget(
        "fs-12345678.efs.us-east-1.amazonaws.com", 2049, "/etc/amazon/efs/efs-utils.crt",
        "fs-12345678.efs.us-east-1.amazonaws.com")


def test_a_plain_tunnel_has_no_peer_to_check() -> None:
    plain = "\n".join(line for line in CONFIG.splitlines()
                      if not line.startswith(("CAfile", "checkHost")))
    assert parse_tunnel_config(plain) is None
    assert parse_tunnel_config("connect = nowhere\nCAfile = x\ncheckHost = y") is None


def test_the_configuration_of_a_mount_point(tmp_path: Path) -> None:
    target = Path("/stage/a")
    assert tunnel_config_for(tmp_path, target) is None
    (tmp_path / "stunnel-config.fs-12345678.stage.ab.20001").write_text(CONFIG)
    assert tunnel_config_for(tmp_path, target) is None  # another mount point
    mine = tmp_path / "stunnel-config.fs-12345678.stage.a.20002"
    mine.write_text(CONFIG)
    assert tunnel_config_for(tmp_path, target) == mine
