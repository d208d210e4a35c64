"""The version of the three distributions (efs-csi-core, efs-csi-controller, efs-csi-node),
which are released together: the binaries speak one wire contract (efs_csi.contract). The
binaries' pyproject.toml files repeat it, with exact pins on the core; tests/packaging checks
that they all agree."""

__version__ = "0.1.0"
