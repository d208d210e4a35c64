#!/usr/bin/env bash
# Build the real Kubernetes parts the cluster tests run, from the Go module proxy alone, into
# $OUT (default .tools/bin). Each part is a small wrapper module under tests/cluster/go/ whose
# go.mod/go.sum pin every version and checksum; a part is rebuilt only when its module changes.
#
#   scripts/build-cluster-tools.sh [etcd] [kubernetes] [provisioner] [kind]
#                                  (default: the first three; kind: what a kind node image adds,
#                                  for scripts/kind-node-image.sh)
#
# Progress and the time each part took are printed; a cached part costs a checksum.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$top/.tools/bin}
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -modcacherw"
mkdir -p "$OUT"

if ! command -v go >/dev/null 2>&1; then
  echo "Go not found: the cluster tools are not built (the cluster tests skip, and fail under CI)"
  exit 0
fi

# Kubernetes' version package is filled in by its release tooling; without it the binaries say
# v0.0.0 and kubectl/kubelet version checks complain.
kube_ldflags() {
  local version minor pkg flags="-s -w"
  version=$(cd "$top/tests/cluster/go/kubernetes" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
  minor=${version#v1.}; minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

provisioner_ldflags() {
  local version
  version=$(cd "$top/tests/cluster/go/provisioner" && go list -m -f '{{.Version}}' github.com/kubernetes-csi/external-provisioner/v5)
  echo "-s -w -X main.version=$version"
}

build() {  # part, ldflags, binary=package...
  local part=$1 ldflags=$2; shift 2
  local dir=$top/tests/cluster/go/$part stamp_file=$OUT/.$part.stamp stamp t0 pair
  stamp=$(cat "$dir/go.mod" "$dir/go.sum" <(go version) <(echo "$ldflags") | sha256sum | cut -c1-16)
  local missing=0
  for pair in "$@"; do [[ -x $OUT/${pair%%=*} ]] || missing=1; done
  if [[ $missing == 0 && -f $stamp_file && $(cat "$stamp_file") == "$stamp" ]]; then
    echo "[cluster-tools] $part: cached ($stamp)"
    return
  fi
  echo "[cluster-tools] $part: building $(printf '%s ' "${@%%=*}")(first build downloads modules and takes minutes)"
  t0=$SECONDS
  for pair in "$@"; do
    (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$OUT/${pair%%=*}" "${pair#*=}")
    echo "[cluster-tools]   ${pair%%=*} built at +$((SECONDS - t0))s"
  done
  echo "$stamp" >"$stamp_file"
  echo "[cluster-tools] $part: done in $((SECONDS - t0))s"
}

parts=("$@")
[[ ${#parts[@]} -gt 0 ]] || parts=(etcd kubernetes provisioner)
t_all=$SECONDS
for part in "${parts[@]}"; do
  case $part in
    etcd) build etcd "-s -w" etcd=go.etcd.io/etcd/server/v3 ;;
    kubernetes)
      build kubernetes "$(kube_ldflags)" \
        kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
        kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
        kubelet=k8s.io/kubernetes/cmd/kubelet \
        kubectl=k8s.io/kubernetes/cmd/kubectl \
        fakecri=./cmd/fakecri registrar=./cmd/registrar ;;
    kind)
      build kind "$(kube_ldflags)" \
        kubeadm=k8s.io/kubernetes/cmd/kubeadm \
        kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
        kube-proxy=k8s.io/kubernetes/cmd/kube-proxy \
        kindnetd=./cmd/kindnetd livenessprobe=./cmd/livenessprobe ;;
    provisioner)
      build provisioner "$(provisioner_ldflags)" \
        csi-provisioner=github.com/kubernetes-csi/external-provisioner/v5/cmd/csi-provisioner ;;
    *) echo "unknown part: $part (etcd, kubernetes, provisioner, kind)" >&2; exit 2 ;;
  esac
done
echo "[cluster-tools] all parts ready in $((SECONDS - t_all))s"
