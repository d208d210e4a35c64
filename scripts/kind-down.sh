#!/usr/bin/env bash
# Delete the kind cluster made by kind-up.sh and the local backend's data.
set -euo pipefail

cluster="${KIND_CLUSTER:-efs-csi}"
data_dir="${EFS_CSI_KIND_DATA:-/tmp/efs-csi-kind}"
kind delete cluster --name "${cluster}"
rm -rf "${data_dir}"
