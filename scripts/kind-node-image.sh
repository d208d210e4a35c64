#!/usr/bin/env bash
# Build a kind node image locally, for machines that reach no container registry (CI, this
# project's machines): what kind's published kindest/node holds for our Kubernetes release,
# made from the Debian mirror, the Go module proxy and PyPI alone (scripts/kind/*.sh say how),
# plus the images the chart and kind/values.yaml would pull (the CSI sidecars, moto, busybox).
# `kind-up.sh` takes it as KIND_NODE_IMAGE. Needs root, Go and Debian's tools (apt-get,
# debuerreotype); users with a registry need none of this: kind pulls kindest/node.
#
#   scripts/kind-node-image.sh        prints the image's name (also in .cache/kind/node-image)
#
# The image lives in the Docker engine at DOCKER_HOST, or when that is unset in the kind engine
# of scripts/kind/engine.sh (started here and left running for kind-up). Its tag carries a
# digest of everything that goes into it (the scripts, the Debian base, every binary), so it is
# rebuilt only when one of those changes: a warm run checks the digests and is done. Where the
# time went is printed at the end.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/kind/paths.sh
source "${repo}/scripts/kind/paths.sh"
mkdir -p "${KIND_CACHE}" "${KIND_LOGS}"
times=()
step() {  # name, command...
  local name=$1 t0=${EPOCHREALTIME}; shift
  echo "== kind-node-image: ${name}" >&2
  "$@"
  times+=("$(printf '%-12s %6.1fs' "${name}" "$(awk "BEGIN { printf \"%.3f\", ${EPOCHREALTIME} - ${t0} }")")")
}

if [[ -z "${DOCKER_HOST:-}" ]]; then
  step engine "${repo}/scripts/kind/engine.sh" start >/dev/null
  export DOCKER_HOST="${KIND_DOCKER_HOST}"
fi
export PATH="${DOCKER_ROOT}/usr/bin:${PATH}"   # Debian's docker CLI when none is installed
command -v docker >/dev/null || { echo "no docker CLI: run scripts/kind/engine.sh start" >&2; exit 1; }
step tools "${repo}/scripts/kind/tools.sh" >&2   # its builds print to stdout, which names the image

# The Debian base scripts/images makes (debuerreotype bookworm-slim); made here when missing.
base_tar="${EFS_CSI_IMAGES_CACHE}/base/bookworm-slim.tar"
make_base_tar() {
  local started=false
  if ! "${repo}/scripts/images/dockerd.sh" status; then
    "${repo}/scripts/images/dockerd.sh" start >/dev/null
    started=true
  fi
  "${repo}/scripts/images/base.sh" efs-csi-build/debian:bookworm-slim
  if [[ "${started}" == true ]]; then "${repo}/scripts/images/dockerd.sh" stop; fi
}
[[ -s "${base_tar}" ]] || step base-tar make_base_tar

digest() { sha256sum "$@" | sha256sum | cut -c1-16; }
kube_version="$("${TOOLS_BIN}/kubelet" --version | awk '{print $2}')"
base_key="$(digest "${repo}/scripts/kind/base-image.sh" "${repo}/scripts/kind/paths.sh" \
                   "${base_tar}" "${KIND_BIN}/crictl")"
node_key="$(printf '%s\n' "${base_key}" "$(grep -A3 -E '^  (csiProvisioner|nodeDriverRegistrar|livenessProbe):' "${repo}/helm/values.yaml")" \
                          "$(grep -E '"(moto|boto3|botocore|flask|flask-cors)==' "${repo}/pyproject.toml")" \
            | cat - <(cd "${repo}" && sha256sum scripts/kind/images.sh scripts/kind/node-image.sh) \
                    <(sha256sum "${KIND_BIN}"/* \
                        "${TOOLS_BIN}"/{kube-apiserver,kube-controller-manager,kubelet,kubectl,etcd,csi-provisioner,registrar} \
                      | awk '{print $1}') \
            | sha256sum | cut -c1-16)"
base_image="efs-csi-kind/base:${base_key}"
node_image="efs-csi-kind/node:${kube_version}-${node_key}"

if docker image inspect "${node_image}" >/dev/null 2>&1; then
  echo "kind-node-image: ${node_image} is up to date" >&2
else
  docker image inspect "${base_image}" >/dev/null 2>&1 \
    || step base "${repo}/scripts/kind/base-image.sh" "${base_tar}" "${base_image}"
  step images "${repo}/scripts/kind/images.sh" "${base_tar}" > "${KIND_CACHE}/preload.txt"
  step node-image "${repo}/scripts/kind/node-image.sh" "${base_image}" "${node_image}" \
    < "${KIND_CACHE}/preload.txt"
  # Earlier node and base images (other inputs) only take space now.
  docker images --format '{{.Repository}}:{{.Tag}}' \
    | grep -E '^efs-csi-kind/(node|base):' | grep -vxF -e "${node_image}" -e "${base_image}" \
    | xargs -r docker rmi >/dev/null || true
fi
echo "${node_image}" > "${KIND_CACHE}/node-image"
printf 'kind-node-image: %s\n' "${times[@]}" >&2
echo "${node_image}"
