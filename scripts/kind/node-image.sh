#!/usr/bin/env bash
# `kind build node-image`, step for step as kind's pkg/build/nodeimage/buildcontext.go does it,
# with every image taken from the engine instead of a registry (kind's builder always pulls the
# base image and `ctr content fetch`es every image a Kubernetes release does not ship, even when
# all are present):
#   docker run -d --entrypoint=sleep BASE infinity          (the build container)
#   docker cp kubeadm kubelet kubectl -> /usr/bin           (chmod +x, chown root:root)
#   /kind/version, /kind/manifests/default-{cni,storage}.yaml (kind's own manifests, compiled
#                                                              from its source's constants)
#   containerd in the container; `ctr images import` with kind's flags (pinned, no unpack)
#   docker commit with kind's ENTRYPOINT and ENV
#
#   scripts/kind/node-image.sh BASE_IMAGE IMAGE < images     (one image name a line, from
#                                                            images.sh; DOCKER_HOST: the engine)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/kind/paths.sh
source "${repo}/scripts/kind/paths.sh"
base_image="${1:?usage: $0 BASE_IMAGE IMAGE < images}"
image="${2:?usage: $0 BASE_IMAGE IMAGE < images}"
mapfile -t preload
kube_version="$("${TOOLS_BIN}/kubelet" --version | awk '{print $2}')"

# kind's default CNI (kindnetd) and storage (local-path-provisioner) manifests are Go constants
# of its nodeimage package: a two-line program prints them.
manifests="${KIND_CACHE}/manifests"
rm -rf "${manifests}"
mkdir -p "${manifests}/gen"
source_dir="$(go env GOMODCACHE)/sigs.k8s.io/kind@${KIND_VERSION}/pkg/build/nodeimage"
for file in const_cni.go const_storage.go; do
  sed 's/^package nodeimage$/package main/' "${source_dir}/${file}" > "${manifests}/gen/${file}"
done
printf 'module gen\n\ngo 1.21\n' > "${manifests}/gen/go.mod"
cat > "${manifests}/gen/main.go" <<'GO'
package main

import "os"

func main() {
	_ = os.WriteFile(os.Args[1]+"/default-cni.yaml", []byte(defaultCNIManifest), 0o644)
	_ = os.WriteFile(os.Args[1]+"/default-storage.yaml", []byte(defaultStorageManifest), 0o644)
}
GO
(cd "${manifests}/gen" && GOTOOLCHAIN=local GOFLAGS="" go run . "${manifests}")

build="efs-csi-kind-build-$$"
trap 'docker rm -f -v "${build}" >/dev/null 2>&1 || true' EXIT
docker run -d --entrypoint=sleep --name="${build}" --security-opt seccomp=unconfined \
  "${base_image}" infinity >/dev/null
for binary in "${KIND_BIN}/kubeadm" "${TOOLS_BIN}/kubelet" "${TOOLS_BIN}/kubectl"; do
  name="$(basename "${binary}")"
  docker cp "${binary}" "${build}:/usr/bin/${name}"
  docker exec "${build}" chmod +x "/usr/bin/${name}"
  docker exec "${build}" chown root:root "/usr/bin/${name}"
done
printf '%s' "${kube_version}" | docker exec -i "${build}" cp /dev/stdin /kind/version
docker exec "${build}" mkdir -p /kind/manifests
for file in default-cni.yaml default-storage.yaml; do
  docker exec -i "${build}" cp /dev/stdin "/kind/manifests/${file}" < "${manifests}/${file}"
done

# Every image kubeadm and kind's manifests name must be preloaded, or a node would try a registry.
wanted=("${KINDNETD_IMAGE}" "${LOCAL_PATH_PROVISIONER_IMAGE}" "${LOCAL_PATH_HELPER_IMAGE}"
        "$(docker exec "${build}" sh -c "sed -n 's/.*sandbox_image = \"\\(.*\\)\"/\\1/p' /etc/containerd/config.toml")")
mapfile -t -O "${#wanted[@]}" wanted < <(docker exec "${build}" kubeadm config images list \
                                           --kubernetes-version "${kube_version}")
for name in "${wanted[@]}"; do
  printf '%s\n' "${preload[@]}" | grep -qxF "${name}" \
    || { echo "node image: ${name} is not among the preloaded images" >&2; exit 1; }
done

docker exec "${build}" sh -c 'nohup containerd > /dev/null 2>&1 &'
# kind waits with `ctr info`, which containerd 1.6's ctr lacks.
docker exec "${build}" sh -c 'for i in $(seq 1 30); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.5; done; ctr version >/dev/null'
docker save "${preload[@]}" | docker exec -i "${build}" ctr --namespace=k8s.io images import \
  --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null
docker exec "${build}" ctr --namespace=k8s.io images list -q | grep -v -e '^sha256:' -e '^import-' \
  | sed 's/^/node image: preloaded /' >&2
docker exec "${build}" pkill containerd || true
# Stopped once only a zombie is left (the build container's init, sleep, reaps nobody).
docker exec "${build}" sh -c 'for i in $(seq 1 20); do ps -C containerd -o stat= | grep -qv Z || exit 0; sleep 0.5; done; exit 1'
docker commit \
  --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
  --change 'ENV HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY=""' \
  "${build}" "${image}" >/dev/null
echo "node image: ${image}, $(docker image inspect -f '{{.Size}}' "${image}" | awk '{printf "%.0f MB", $1 / 1e6}')" >&2
