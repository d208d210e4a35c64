#!/usr/bin/env bash
# Where the offline kind tooling keeps things (sourced by the scripts beside it and by
# scripts/kind-node-image.sh). Everything lives in ignored folders of the checkout, so a warm run
# reuses the tools, the images and the node image, and `make kind-clean` forgets them.
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
repo="${repo:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

# What kind v0.33.0's node image for Kubernetes v1.34 holds, and the names it looks for
# (its pkg/build/nodeimage/const_*.go and images/base/files/etc/containerd/config.toml).
KIND_VERSION=v0.33.0
CRICTL_VERSION=v1.34.0
LOCAL_PATH_PROVISIONER_VERSION=v0.0.30
KINDNETD_IMAGE=docker.io/kindest/kindnetd:v20260820-69b56db7
LOCAL_PATH_PROVISIONER_IMAGE=docker.io/kindest/local-path-provisioner:v20260820-69b56db7
LOCAL_PATH_HELPER_IMAGE=docker.io/kindest/local-path-helper:v20260131-7181c60a
# moto for kind/values.yaml's in-cluster EFS API, busybox for the examples and the e2e's apps.
MOTO_VERSION=5.2.5
MOTO_IMAGE="motoserver/moto:${MOTO_VERSION}"
BUSYBOX_IMAGE=busybox:1.37

KIND_CACHE="${EFS_CSI_KIND_CACHE:-${repo}/.cache/kind}"
# The Go-built binaries the node image holds (kubeadm, kube-scheduler, kube-proxy, the
# stand-ins, crictl, CoreDNS, local-path-provisioner) and the kind CLI beside kubectl and helm.
KIND_BIN="${repo}/.tools/kind/bin"
TOOLS_BIN="${repo}/.tools/bin"
KIND_CLI="${TOOLS_BIN}/kind"
KIND_LOGS="${KIND_CACHE}/logs"

# The engine kind runs on: Debian's docker.io (unpacked once for scripts/images too) in a
# network namespace of its own, its data (images, the node image) kept in the cache.
# scripts/images/paths.sh sets DOCKER_HOST to the image builds' engine: kept apart as
# IMAGES_DOCKER_HOST, and the caller's DOCKER_HOST (e.g. the kind engine's) left as it was.
caller_docker_host="${DOCKER_HOST-}"
caller_had_docker_host="${DOCKER_HOST+set}"
# shellcheck source=scripts/images/paths.sh
source "${repo}/scripts/images/paths.sh"
IMAGES_DOCKER_HOST="${DOCKER_HOST}"
if [[ -n "${caller_had_docker_host}" ]]; then DOCKER_HOST="${caller_docker_host}"; else unset DOCKER_HOST; fi
KIND_DOCKER_DATA="${KIND_CACHE}/docker"
# Unix socket paths are limited to 107 bytes and containerd nests its own under the exec root:
# both live in a short per-checkout directory under /tmp, as scripts/images does it.
checkout_id="$(printf '%s' "${repo}" | sha256sum | cut -c1-12)"
KIND_SHORT_DIR="/tmp/efs-csi-kind.${checkout_id}"
KIND_DOCKER_EXEC="${KIND_SHORT_DIR}/exec"
KIND_DOCKERD_PIDFILE="${KIND_SHORT_DIR}/dockerd.pid"
KIND_DOCKER_HOST="unix://${KIND_SHORT_DIR}/docker.sock"
KIND_NETNS="efs-csi-kind-${checkout_id:0:8}"
# Debian's iptables (nft backend) for dockerd's rules inside that namespace, unpacked, not
# installed: a host without iptables stays without (a kubelet on the host would otherwise
# start writing its chains into the host's tables).
KIND_IPTABLES_ROOT="${repo}/.tools/kind/iptables"
KIND_STATE="${KIND_CACHE}/engine"       # what start recorded, for stop to put back
KIND_KUBECONFIG="${KIND_CACHE}/kubeconfig"
