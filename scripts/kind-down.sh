#!/usr/bin/env bash
# Delete the kind cluster made by kind-up.sh and the local backend's data. The data holds
# directories owned by the access points' uids (e.g. 1000, mode 700), which the host user may
# not be able to remove: they are removed as root, inside a kind node while the cluster still
# exists, or else inside a throw-away container of the node image.
set -euo pipefail

cluster="${KIND_CLUSTER:-efs-csi}"
data_dir="${EFS_CSI_KIND_DATA:-/tmp/efs-csi-kind}"
local_root=/var/lib/efs-csi-local

# Whole outputs, not pipes into grep -q or head: under pipefail a reader that stops early fails
# kind with SIGPIPE.
clusters="$(kind get clusters 2>/dev/null || true)"
if grep -qx "${cluster}" <<< "${clusters}"; then
  nodes="$(kind get nodes --name "${cluster}")"
  node="${nodes%%$'\n'*}"
  docker exec "${node}" sh -c "rm -rf ${local_root}/* ${local_root}/.[!.]*" || true
  kind delete cluster --name "${cluster}"
fi
if [[ -d "${data_dir}" ]] && ! rm -rf "${data_dir}" 2>/dev/null; then
  docker run --rm --user 0:0 --network none --entrypoint rm \
    -v "$(cd "${data_dir}" && pwd):/data" efs-csi-node:kind -rf /data/.
  rm -rf "${data_dir}"
fi
