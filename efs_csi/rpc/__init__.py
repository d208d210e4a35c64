"""Serving CSI over gRPC, the same way in both binaries.

- ``server``: listen on ``unix://`` or ``tcp://``, run the process's background tasks, and drain
  on SIGTERM;
- ``hook``: what every call goes through (deadline and method in context variables, the one
  error mapping of ``efs_csi.errors``, one canonical log line, metrics);
- ``identity``: the CSI Identity service;
- ``supervision``: background tasks that are restarted, never left dead.
"""
