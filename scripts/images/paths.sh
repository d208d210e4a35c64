#!/usr/bin/env bash
# Where the image tooling keeps things (sourced by the scripts beside it). Everything lives in
# ignored folders of the checkout, so a warm run reuses the base image, the unpacked engine and
# BuildKit's cache, and `make images-clean` forgets them.
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
repo="${repo:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

EFS_CSI_IMAGES_CACHE="${EFS_CSI_IMAGES_CACHE:-${repo}/.cache/images}"
DOCKER_ROOT="${repo}/.tools/docker/root"
DOCKER_DEBS="${repo}/.tools/docker/debs"
DOCKER_DATA="${EFS_CSI_IMAGES_CACHE}/docker"
DOCKERD_LOG="${EFS_CSI_IMAGES_CACHE}/dockerd.log"
DOCKERD_SYSCTLS="${EFS_CSI_IMAGES_CACHE}/dockerd.sysctls"
DOCKERD_ETC_MARK="${EFS_CSI_IMAGES_CACHE}/dockerd.made-etc-docker"
# Unix socket paths are limited to 107 bytes, and containerd nests its own socket under the
# exec root: both live in a short per-checkout directory under /tmp.
short_dir="/tmp/efs-csi-dockerd.$(printf '%s' "${repo}" | sha256sum | cut -c1-12)"
DOCKER_EXEC="${short_dir}/exec"
DOCKERD_PIDFILE="${short_dir}/dockerd.pid"
DOCKERD_SOCKET="${short_dir}/docker.sock"
DOCKER_HOST="unix://${DOCKERD_SOCKET}"
DOCKER_CLI="${DOCKER_ROOT}/usr/bin/docker"
