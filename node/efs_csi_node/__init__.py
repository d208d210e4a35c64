"""efs-csi-node: stages and publishes EFS mounts on a node (the CSI Node service)."""
