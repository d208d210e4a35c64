"""The test bed: real parts that tests, the demo and the benchmarks all stand the driver on.

Never shipped (no distribution includes it, no image copies it) and never imported by the
driver (import-linter). It imports nothing from ``tests/`` (ruff's banned imports), so the demo
and the benchmarks do not depend on the test tree.

- ``moto_server``: moto's EFS API as a real HTTP server on loopback;
- ``efs_proxy``: a loopback proxy in front of moto that adds what real EFS does and moto lacks,
  and injects throttling, 5xx and latency; ``efs_rules``: EFS's documented tag rules and
  efs-utils' mount-option checks, by which tests judge the driver;
- ``processes``: either binary as a real subprocess on a temporary socket;
- ``csi_builders``: CSI request pieces and the nearest-rank percentile;
- ``mounts``: leaving no mount behind;
- ``slowfs``: a FUSE pass-through that adds latency per operation, standing in for EFS.
"""
