"""The node image installs the Amazon CA bundle from itself at every start: a bogus or stale
copy left in the host directories (the one the chart mounts at /var/amazon/efs, and the legacy
/etc/amazon/efs) never survives a start, while efs-utils' other state there does.

The node runs with the chart's settings, its two efs-utils host directories mapped to
directories of the test, on a loopback-only network.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from testbed.pods import docker_command, docker_run_options
from tests.images.engine import Engine
from tests.images.test_images import WORKLOADS, container_healthz

BOGUS_CA = ("-----BEGIN CERTIFICATE-----\nMIIBbogusbogusbogus\n-----END CERTIFICATE-----\n"
            "# an attacker's, or one an image upgrade has since rotated\n")


def start_node(engine: Engine, host_dir: Path, legacy_dir: Path) -> str:
    spec, plugin = WORKLOADS[1].spec()
    fields = {"spec.nodeName": "smoke-node"}
    options = docker_run_options(spec, plugin, field_values=fields, host_dirs={
        "/var/amazon/efs": str(host_dir), "/etc/amazon/efs-legacy": str(legacy_dir)})
    args = [*docker_command(plugin, fields), "--availability-zone=us-east-1a",
            "--http-endpoint=127.0.0.1:9810"]
    name = f"efs-csi-ca-{time.monotonic_ns()}"
    engine.docker("run", "-d", "--name", name, "--network", "none",
                  "-e", "AWS_EC2_METADATA_DISABLED=true", *options, engine.image("node"), *args)
    return name


def test_a_bogus_host_ca_is_replaced_by_the_images_at_every_start(engine: Engine,
                                                                   tmp_path: Path) -> None:
    image_ca = engine.run("node", "/etc/amazon/efs-static-files/efs-utils.crt",
                          entrypoint="cat").stdout
    assert image_ca.strip() and image_ca != BOGUS_CA  # (CI's stand-in ships a placeholder)
    host, legacy = tmp_path / "var-amazon-efs", tmp_path / "etc-amazon-efs"
    host.mkdir()
    legacy.mkdir()
    (legacy / "efs-utils.crt").write_text(BOGUS_CA)  # the legacy directory's CA: never taken
    (legacy / "stunnel-config.fs-1").write_text("state")  # its state: migrated
    for start in range(2):
        name = start_node(engine, host, legacy)
        try:
            assert container_healthz(engine, name) == "ok"
            installed = (host / "efs-utils.crt").read_text()
            assert hashlib.sha256(installed.encode()).hexdigest() == \
                hashlib.sha256(image_ca.encode()).hexdigest(), f"start {start}: not the image's"
            assert (host / "stunnel-config.fs-1").read_text() == "state"
            assert (legacy / "efs-utils.crt").read_text() == BOGUS_CA  # left alone
        finally:
            engine.docker("rm", "-f", name, check=False)
        # Between starts, someone (or an old release) puts a bogus CA on the host again.
        (host / "efs-utils.crt").chmod(0o644)
        (host / "efs-utils.crt").write_text(BOGUS_CA)
