"""A slow file system for tests and benchmarks: a FUSE pass-through that adds latency.

On EFS every metadata operation (a lookup, a getattr, a page of readdir) is a network round
trip, so a tree walk is bound by latency rather than by the CPU. This package stands in for
that: ``slowfs.mount.slow_mount`` serves a local directory through FUSE (with ``mfusepy``, a
maintained ctypes binding of libfuse from PyPI, over Debian's libfuse 3, named explicitly so
a machine with libfuse 2 beside it works too: ``slowfs.libfuse``) in a child process
that sleeps a fixed delay in every operation a walk makes.

It lives at the top of the repository, not under ``tests/`` or ``bench/``, because both the
tests and the benchmarks import it (a benchmark must not import from the test suite), and it
is not shipped in the driver's packages (``pyproject.toml`` lists only ``efs_csi``,
``controller`` and ``node``).

Importing this package never loads libfuse: only the server process does, so a machine
without libfuse can still import it and ask ``libfuse_available()``.
"""

from __future__ import annotations

from testbed.slowfs.mount import SlowMount, ensure_libfuse, libfuse_available, slow_mount

__all__ = ["SlowMount", "ensure_libfuse", "libfuse_available", "slow_mount"]
