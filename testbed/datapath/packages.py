"""The Debian packages the data path needs, installed with apt-get when missing.

    python -m testbed.datapath.packages        (what ``make test`` runs; root and apt-get)

nfs-ganesha (the NFSv4 server) with its VFS back end, stunnel4 (the TLS "mount target"),
libnfs-utils (a userspace NFS client), fuse3 (the mount stand-in), strace (``connect()``
traces), openssl (the local CA). nfs-ganesha pulls rpcbind and nfs-common in; nothing here
starts them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

PACKAGES = ("nfs-ganesha", "nfs-ganesha-vfs", "stunnel4", "libnfs-utils", "fuse3", "strace",
            "openssl", "iproute2", "util-linux")


def missing(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    if shutil.which("dpkg-query") is None:
        return list(packages)
    found = []
    for package in packages:
        result = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", package],
                                capture_output=True, text=True, check=False)
        if "install ok installed" not in result.stdout:
            found.append(package)
    return found


def ensure(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Install what is missing when root with apt-get; what is still missing afterwards."""
    absent = missing(packages)
    if absent and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # Other jobs on the machine may hold dpkg's lock for a while: wait for it.
        lock = ["-o", "DPkg::Lock::Timeout=600"]
        subprocess.run(["apt-get", *lock, "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends",
                        *absent], check=True, env=env, stdout=subprocess.DEVNULL)
        absent = missing(packages)
    return absent


def main() -> int:
    absent = ensure()
    if absent:
        print(f"data path packages missing (not root, or no apt-get): {' '.join(absent)}; "
              "its tests skip", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
