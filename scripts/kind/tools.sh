#!/usr/bin/env bash
# Every binary the kind node image and the kind workflow need, from the Go module proxy (and a
# C compiler for pause), each built once and kept until its pin changes:
#   kind CLI                   go install sigs.k8s.io/kind@$KIND_VERSION       -> .tools/bin
#   kubeadm, kube-scheduler,   scripts/build-cluster-tools.sh kind (the wrapper module
#   kube-proxy, the kindnetd   tests/cluster/go/kind: the same Kubernetes release and Go build
#   and livenessprobe          cache as the cluster tests' kube-apiserver, kubelet, ...)
#   stand-ins                                                                   -> .tools/kind/bin
#   crictl                     go install sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION
#   coredns                    go install github.com/coredns/coredns@<kubeadm's CoreDNS tag>
#   local-path-provisioner     go install github.com/rancher/local-path-provisioner@...
#   pause                      Kubernetes' build/pause/linux/pause.c, gcc -static
# kube-apiserver, kube-controller-manager, kubelet, kubectl, etcd, helm, csi-provisioner and
# the registrar stand-in are the cluster tests' own builds (make tools), used as they are.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/kind/paths.sh
source "${repo}/scripts/kind/paths.sh"
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -modcacherw"
mkdir -p "${KIND_BIN}" "${TOOLS_BIN}"

if ! command -v go >/dev/null 2>&1; then
  echo "Go not found: the kind node image cannot be built" >&2
  exit 1
fi

timed() {  # name, command...
  local name=$1 t0=$SECONDS; shift
  "$@"
  echo "[kind-tools] ${name}: built in $((SECONDS - t0))s" >&2
}

# go_install DIR NAME MODULE@VERSION: installs unless DIR/NAME was built from that pin.
go_install() {
  local dir=$1 name=$2 pin=$3 stamp
  stamp="$(printf '%s\n%s\n' "${pin}" "$(go version)")"
  if [[ -x "${dir}/${name}" && "$(cat "${dir}/.${name}.pin" 2>/dev/null)" == "${stamp}" ]]; then
    echo "[kind-tools] ${name}: cached (${pin##*@})" >&2
    return 0
  fi
  echo "[kind-tools] ${name}: go install ${pin}" >&2
  timed "${name}" env CGO_ENABLED=0 GOBIN="${dir}" go install -trimpath -ldflags '-s -w' "${pin}"
  printf '%s' "${stamp}" > "${dir}/.${name}.pin"
}

go_install "${TOOLS_BIN}" kind "sigs.k8s.io/kind@${KIND_VERSION}"
OUT="${KIND_BIN}" "${repo}/scripts/build-cluster-tools.sh" kind
# The cluster tests' builds (make tools) are what the node runs.
OUT="${TOOLS_BIN}" "${repo}/scripts/build-cluster-tools.sh" kubernetes etcd provisioner

coredns="$("${KIND_BIN}/kubeadm" config images list --kubernetes-version \
           "$("${TOOLS_BIN}/kubelet" --version | awk '{print $2}')" 2>/dev/null \
           | sed -n 's|.*/coredns:||p')"
[[ -n "${coredns}" ]] || { echo "kubeadm names no CoreDNS image" >&2; exit 1; }
go_install "${KIND_BIN}" crictl "sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION}"
go_install "${KIND_BIN}" coredns "github.com/coredns/coredns@${coredns}"
go_install "${KIND_BIN}" local-path-provisioner \
  "github.com/rancher/local-path-provisioner@${LOCAL_PATH_PROVISIONER_VERSION}"

kube_version="$(cd "${repo}/tests/cluster/go/kind" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
pause_c="$(cd "${repo}/tests/cluster/go/kind" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
if [[ ! -x "${KIND_BIN}/pause" || "$(cat "${KIND_BIN}/.pause.pin" 2>/dev/null)" != "${kube_version}" ]]; then
  command -v gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq gcc libc6-dev >/dev/null; }
  timed pause gcc -Os -Wall -Werror -static -DVERSION="${kube_version}" -o "${KIND_BIN}/pause" "${pause_c}"
  strip "${KIND_BIN}/pause"
  printf '%s' "${kube_version}" > "${KIND_BIN}/.pause.pin"
fi
echo "[kind-tools] ready" >&2
