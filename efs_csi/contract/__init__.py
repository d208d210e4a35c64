"""What the controller and the node agree on, owned here and nowhere else.

The two binaries are packaged apart and released together because they speak one contract:

- the plugin's name (``PLUGIN_NAME``), the topology key the controller puts on a volume and the
  node reports for itself (``TOPOLOGY_ZONE_KEY``), and the startup taint the node takes off its
  Node (``NOT_READY_TAINT``);
- the volume handle (``volume_id``): what CreateVolume returns and every node call parses;
- the volume context (``volume_context``): what the controller writes into a volume for the node
  (its requested size, cross-account mount target addresses) and the keys users may set on a
  static PV; one writer (the controller's) and one parser (the node's).

The controller writes through these modules and the node parses through them;
tests/contract feeds what the controller writes into the node's parsers.
"""

PLUGIN_NAME = "efs.csi.aws.com"
# Also the zone label Kubernetes puts on Nodes, which the node reads its zone from.
TOPOLOGY_ZONE_KEY = "topology.kubernetes.io/zone"
NOT_READY_TAINT = "efs.csi.aws.com/agent-not-ready"

__all__ = ["NOT_READY_TAINT", "PLUGIN_NAME", "TOPOLOGY_ZONE_KEY"]
