"""efs-csi-controller: provisions EFS access points (the CSI Controller service)."""
