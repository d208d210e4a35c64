#!/usr/bin/env bash
# Collect what a bug report needs: driver pod logs (current and previous), descriptions,
# events, the CSIDriver/CSINode objects and the StorageClasses, into one tarball.
# Usage: scripts/collect-logs.sh [NAMESPACE] [RELEASE]   (defaults: kube-system, efs-csi)
set -euo pipefail

namespace="${1:-kube-system}"
release="${2:-efs-csi}"
out="$(mktemp -d)/efs-csi-logs-$(date +%Y%m%dT%H%M%S)"
mkdir -p "${out}"

# The release's controller and node pods, whatever nameOverride says.
selector="app.kubernetes.io/instance=${release},app.kubernetes.io/component in (controller,node)"
pods="$(kubectl -n "${namespace}" get pods -l "${selector}" -o name)"
for pod in ${pods}; do
  name="${pod#pod/}"
  kubectl -n "${namespace}" describe pod "${name}" > "${out}/${name}.describe.txt" 2>&1 || true
  for container in $(kubectl -n "${namespace}" get pod "${name}" \
                       -o jsonpath='{.spec.containers[*].name}'); do
    kubectl -n "${namespace}" logs "${name}" -c "${container}" \
      > "${out}/${name}.${container}.log" 2>&1 || true
    kubectl -n "${namespace}" logs "${name}" -c "${container}" --previous \
      > "${out}/${name}.${container}.previous.log" 2>&1 || true
  done
done
kubectl -n "${namespace}" get events --sort-by=.lastTimestamp > "${out}/events.txt" 2>&1 || true
kubectl get csidriver efs.csi.aws.com -o yaml > "${out}/csidriver.yaml" 2>&1 || true
kubectl get csinodes -o yaml > "${out}/csinodes.yaml" 2>&1 || true
kubectl get storageclasses -o yaml > "${out}/storageclasses.yaml" 2>&1 || true
kubectl get nodes -o wide > "${out}/nodes.txt" 2>&1 || true

tar -czf "${out}.tar.gz" -C "$(dirname "${out}")" "$(basename "${out}")"
echo "${out}.tar.gz"
