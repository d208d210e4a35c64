#!/usr/bin/env python3
"""CI stand-in for amazon-efs-mount-watchdog (see ../../README.md).

Kept: it reads the ``[mount-watchdog]`` section of /etc/amazon/efs/efs-utils.conf (and fails
without it, as the real one does), prints its version, and runs until SIGTERM. Replaced: the
real watchdog's work (certificate renewal, tunnel health checks, cleaning up tunnels after an
unmount), which needs real mounts.
"""

import configparser
import signal
import sys

VERSION = "0.0.0-standin"
CONFIG_FILE = "/etc/amazon/efs/efs-utils.conf"


def main(argv):
    if "--version" in argv:
        print(f"amazon-efs-mount-watchdog Version: {VERSION}")
        return 0
    config = configparser.ConfigParser()
    config.read(CONFIG_FILE)
    config.options("mount-watchdog")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stderr.write("amazon-efs-mount-watchdog (stand-in) running\n")
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
