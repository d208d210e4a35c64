"""libnfs' command-line tools (Debian's libnfs-utils): a userspace NFSv4 client, run inside a
network namespace with ``nsenter``, to read and write through efs-proxy's port as the kernel's
NFS client would.

libnfs 4.0 closes its socket with ``SO_LINGER {1, 0}``, so every close is a RST, and efs-proxy
exits on a client RST (only the watchdog would bring it back). ``no_linger_library`` builds a
small LD_PRELOAD library that drops that option, so the tools close with a FIN as the kernel
client does. libnfs 4.0 speaks NFSv4.0 and splits a URL into export and file at the last
``/``: files are read from a directory below the export's root.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

NO_LINGER_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/socket.h>

/* Drop SO_LINGER {on, 0}: close with FIN, not RST (efs-proxy exits on a client RST). */
int setsockopt(int fd, int level, int name, const void *value, socklen_t len) {
    static int (*real)(int, int, int, const void *, socklen_t);
    if (!real) real = dlsym(RTLD_NEXT, "setsockopt");
    if (level == SOL_SOCKET && name == SO_LINGER) return 0;
    return real(fd, level, name, value, len);
}
"""


def no_linger_library(directory: Path) -> Path:
    """Build (once) the LD_PRELOAD library; needs a C compiler."""
    library = directory / "no-linger.so"
    if library.exists():
        return library
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "no-linger.c"
    source.write_text(NO_LINGER_C)
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("a C compiler is needed for the libnfs LD_PRELOAD helper")
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(library) + ".tmp",
                    str(source), "-ldl"], check=True, capture_output=True, timeout=60)
    Path(str(library) + ".tmp").rename(library)
    return library


def url(host: str, port: int, path: str = "/") -> str:
    """A libnfs URL for NFSv4 on ``port`` (no portmapper)."""
    return f"nfs://{host}{path}?version=4&nfsport={port}"


@dataclass(frozen=True)
class Libnfs:
    """The tools, run in the network namespace of process ``netns_pid``."""

    netns_pid: int
    no_linger: Path

    def _run(self, *command: str, timeout: float, stdin: bytes | None = None
             ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["nsenter", f"--net=/proc/{self.netns_pid}/ns/net", "env",
             f"LD_PRELOAD={self.no_linger}", *command],
            capture_output=True, timeout=timeout, input=stdin, check=False)

    def ls(self, nfs_url: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        return self._run("nfs-ls", nfs_url, timeout=timeout)

    def cat(self, nfs_url: str, timeout: float = 30) -> bytes:
        result = self._run("nfs-cat", nfs_url, timeout=timeout)
        if result.returncode != 0:
            raise OSError(f"nfs-cat {nfs_url}: {result.stderr.decode(errors='replace')}")
        return result.stdout

    def put(self, local: Path, nfs_url: str, timeout: float = 30) -> None:
        """Write ``local`` there (libnfs' WRITEs of 8 KiB or more fail against ganesha 4.3:
        keep files small)."""
        result = self._run("nfs-cp", str(local), nfs_url, timeout=timeout)
        if result.returncode != 0:
            raise OSError(f"nfs-cp to {nfs_url}: {result.stderr.decode(errors='replace')}")
