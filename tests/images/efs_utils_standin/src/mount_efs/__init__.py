#!/usr/bin/env python3
"""CI stand-in for efs-utils' mount.efs (see ../../README.md).

Kept from the real helper, because the images depend on it:
- the interpreter line is rewritten by the image build, and ``efs_utils_common`` is imported
  from beside the script, as the Debian layout of efs-utils has it;
- ``--version`` prints the version;
- a mount needs root, a readable /etc/amazon/efs/efs-utils.conf with a ``[mount]`` section,
  ``/sbin/mount.nfs4`` (the real helper execs it), and the tunnel program on PATH: efs-proxy,
  or stunnel with the ``stunnel`` option;
- ``accesspoint`` without ``tls`` is refused.

Replaced: the kernel NFS mount through the tunnel. No machine of this project has an NFS client,
so the stand-in bind-mounts ``/srv/efs-standin/<fs-id>/<path>`` instead (a test gives that
directory) and records the mount in /var/log/amazon/efs/mount.log.
"""

import os
import shutil
import subprocess
import sys

from efs_utils_common.config_utils import read_config
from efs_utils_common.constants import CONFIG_SECTION, LOG_DIR, VERSION

STANDIN_ROOT = "/srv/efs-standin"


def fatal(message):
    sys.stderr.write(f"mount.efs (stand-in): {message}\n")
    sys.exit(1)


def parse_options(text):
    options = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        options[key] = value or None
    return options


def main(argv):
    if "--version" in argv:
        print(f"{os.path.basename(argv[0])} Version: {VERSION}")
        return 0
    positional = [arg for arg in argv[1:] if not arg.startswith("-")]
    options = {}
    if "-o" in argv:
        options = parse_options(argv[argv.index("-o") + 1])
        positional.remove(argv[argv.index("-o") + 1])
    if len(positional) != 2:
        fatal("usage: mount.efs fs-id:/path mountpoint [-o options]")
    device, mountpoint = positional
    if os.geteuid() != 0:
        fatal("only root can run mount.efs")
    read_config(CONFIG_SECTION)
    if "accesspoint" in options and "tls" not in options:
        fatal('the "tls" option is required when mounting via "accesspoint"')
    if not os.access("/sbin/mount.nfs4", os.X_OK):
        fatal("/sbin/mount.nfs4 not found (nfs-common)")
    tunnel = "stunnel" if "stunnel" in options else "efs-proxy"
    if shutil.which(tunnel) is None:
        fatal(f"{tunnel} not found on PATH")
    fs_id, _, path = device.partition(":")
    source = os.path.join(STANDIN_ROOT, fs_id, (path or "/").lstrip("/"))
    if not os.path.isdir(source):
        fatal(f"{device}: no such file system in the stand-in ({source})")
    subprocess.run(["mount", "--bind", source, mountpoint], check=True)
    os.makedirs(LOG_DIR, exist_ok=True)
    with open(os.path.join(LOG_DIR, "mount.log"), "a", encoding="utf-8") as log:
        log.write(f"stand-in mount {device} {mountpoint} options={sorted(options)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
