"""How the data path's tests find a process of a pod by name (``testbed.datapath.pod``)."""

from __future__ import annotations

import pytest

from testbed.datapath.pod import Process


@pytest.mark.parametrize(("command", "words"), [
    # The binaries' scripts run `python3 -OO` (docker/venv.sh): the script names the process.
    (["/opt/efs-csi/bin/python3", "-OO", "/opt/efs-csi/bin/efs-csi-node", "--endpoint=x"],
     ["/opt/efs-csi/bin/python3", "/opt/efs-csi/bin/efs-csi-node"]),
    (["/usr/bin/python3", "/usr/bin/amazon-efs-mount-watchdog"],
     ["/usr/bin/python3", "/usr/bin/amazon-efs-mount-watchdog"]),
    # Not an interpreter: its own first argument, options included, and nothing past it (tini
    # runs the node, and must not be taken for it).
    (["/usr/bin/tini", "-g", "--", "efs-csi-node"], ["/usr/bin/tini", "-g"]),
    (["/usr/bin/efs-proxy", "/var/run/efs/stunnel-config.fs-1", "--tls"],
     ["/usr/bin/efs-proxy", "/var/run/efs/stunnel-config.fs-1"]),
])
def test_the_words_that_name_a_process(command: list[str], words: list[str]) -> None:
    assert Process(1, command, 0, 0).naming_words == words
