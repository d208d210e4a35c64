"""efs_csi: the core library shared by efs-csi-controller and efs-csi-node."""

from efs_csi._version import __version__

PLUGIN_NAME = "efs.csi.aws.com"
TOPOLOGY_ZONE_KEY = "topology.kubernetes.io/zone"
NOT_READY_TAINT = "efs.csi.aws.com/agent-not-ready"

__all__ = ["NOT_READY_TAINT", "PLUGIN_NAME", "TOPOLOGY_ZONE_KEY", "__version__"]
