"""efs_csi: the core library shared by efs-csi-controller and efs-csi-node."""

from efs_csi._version import __version__

__all__ = ["__version__"]
