#!/usr/bin/env bash
# End to end on the kind cluster from kind-up.sh (any such cluster, a user's included), safe to
# run again and again: the flow of testbed/kind (python -m testbed.kind --help). It prints a
# PASS or FAIL line per check and the time each step took, and exits 1 when a check failed.
#   - a dynamic and a static volume, each used by a writer and a read-only reader on the two
#     nodes: what one writes the other reads, in the access point's directory; one staging
#     mount per volume and one bind per pod on each node;
#   - while the apps do I/O: the node plugin pods deleted (and the startup taint put back,
#     which the new pods must take off), a plugin process stopped (kubelet must restart it
#     through the livenessprobe sidecar), `helm upgrade` to another image tag; the I/O goes on,
#     and deleting the apps unpublishes and unstages through the new pods, leaving nothing
#     mounted;
#   - controller failover: the csi-provisioner leader deleted during a burst of 30 claims;
#   - zones: NodeGetInfo's topology in CSINode, one-zone volumes placed on their zone's node;
#   - cleanup (a deleted claim takes its access point and directory along) and helm uninstall.
# EFS_CSI_KIND_RESULTS=path also writes the checks, figures and step times there as JSON.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-${repo}/.venv/bin/python}"
cd "${repo}"
exec "${python}" -m testbed.kind ${EFS_CSI_KIND_RESULTS:+--results "${EFS_CSI_KIND_RESULTS}"} "$@"
