#!/usr/bin/env bash
# Create a kind cluster, build and load the controller and node images, and install the chart
# with kind values (moto as the in-cluster EFS API, the node's local mount backend). Safe to
# run again: an existing cluster is reused, the images rebuilt (BuildKit's cache makes that
# quick) and the release upgraded. docs/kind.md lists what it needs.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cluster="${KIND_CLUSTER:-efs-csi}"
# The host directory kind/cluster.yaml shares with every node as the local backend's root.
data_dir="${EFS_CSI_KIND_DATA:-/tmp/efs-csi-kind}"
# One zone per node, in the order kubectl lists them (wrapping around): the node plugins report
# them (NodeGetInfo) and one-zone file systems are placed by them.
read -r -a zones <<< "${EFS_CSI_KIND_ZONES:-us-east-1a us-east-1b}"
# A node image built locally (make kind-node-image) where kind's published one cannot be pulled.
node_image="${KIND_NODE_IMAGE:-}"
# docker: build the images here (the default); loaded: efs-csi-{controller,node}:kind are in
# docker already (CI builds them with scripts/images/build.sh), only load them.
images="${EFS_CSI_KIND_IMAGES:-docker}"
case "${images}" in docker|loaded) ;; *) echo "EFS_CSI_KIND_IMAGES must be docker or loaded" >&2; exit 2 ;; esac

mkdir -p "${data_dir}"
clusters="$(kind get clusters 2>/dev/null || true)"   # not piped: grep -q would SIGPIPE kind
if grep -qx "${cluster}" <<< "${clusters}"; then
  # EFS_CSI_KIND_DATA only applies when the cluster is created.
  echo "reusing kind cluster ${cluster}; its shared directory is" \
       "$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/var/lib/efs-csi-local"}}{{.Source}}{{end}}{{end}}' \
          "${cluster}-control-plane")"
else
  sed "s|/tmp/efs-csi-kind|${data_dir}|" "${repo}/kind/cluster.yaml" \
    | kind create cluster --name "${cluster}" ${node_image:+--image "${node_image}"} --config -
fi

# The node image with the local backend's EFS API client (kind/values.yaml: mountBackend local).
for component in controller node; do
  if [[ "${images}" == docker ]]; then
    docker build -f "${repo}/docker/Dockerfile" --target "${component}" \
      --build-arg NODE_EXTRAS=local -t "efs-csi-${component}:kind" "${repo}"
  fi
  kind load docker-image --name "${cluster}" "efs-csi-${component}:kind"
done

# No instance metadata in kind: each node plugin takes its zone from this label.
mapfile -t nodes < <(kubectl get nodes -o name)
for i in "${!nodes[@]}"; do
  kubectl label "${nodes[$i]}" --overwrite "topology.kubernetes.io/zone=${zones[$((i % ${#zones[@]}))]}"
done

helm upgrade --install efs-csi "${repo}/helm" --namespace kube-system \
  --values "${repo}/kind/values.yaml" --wait --timeout 5m
kubectl -n kube-system rollout status deployment/efs-api --timeout=3m
echo "efs-csi is up in kind cluster ${cluster}; next: make kind-e2e"
