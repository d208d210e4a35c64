#!/usr/bin/env bash
# A Docker engine with BuildKit for machines that have none (CI, this project's dev machines):
# Debian's own docker.io, containerd and runc packages, downloaded with `apt-get download` and
# unpacked into .tools/docker (nothing is installed system-wide, no service is enabled).
#
# The daemon listens on a unix socket only, keeps its images and build cache under
# $EFS_CSI_IMAGES_CACHE/docker (warm runs reuse them), and is started without iptables rules,
# bridge, IP forwarding or masquerading: builds and test containers use the host network or
# none. It runs in a mount namespace of its own, so the overlay mounts of its containers never
# show on the host and vanish with it. dockerd raises kernel.keys.root_maxkeys/root_maxbytes at
# start and writes /etc/docker/key.json: `stop` puts back the values recorded at `start` and
# removes /etc/docker again when it was not there before.
#
# Usage: scripts/images/dockerd.sh start|stop|status
#   start   start the daemon unless ours is already running; prints DOCKER_HOST=unix://...
#   stop    stop the daemon we started (by its pid), restore the kernel settings
#   status  exit 0 when our daemon answers
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/images/paths.sh
source "${repo}/scripts/images/paths.sh"
# shellcheck source=scripts/images/dockerd-process.sh
source "${repo}/scripts/images/dockerd-process.sh"

packages=(docker.io containerd runc)
docker_bin="${DOCKER_ROOT}/usr/bin/docker"
sysctls=(kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

docker_cli() { "${docker_bin}" -H "${DOCKER_HOST}" "$@"; }

unpack() {
  [[ -x "${DOCKER_ROOT}/usr/sbin/dockerd" ]] && return 0
  echo "dockerd: unpacking Debian's ${packages[*]} into ${DOCKER_ROOT}" >&2
  mkdir -p "${DOCKER_DEBS}"
  (cd "${DOCKER_DEBS}" && apt-get download -qq "${packages[@]}" 2>/dev/null) || {
    apt-get update -qq && (cd "${DOCKER_DEBS}" && apt-get download -qq "${packages[@]}")
  }
  local deb
  for deb in "${DOCKER_DEBS}"/*.deb; do dpkg-deb -x "${deb}" "${DOCKER_ROOT}"; done
}

running() {
  [[ -f "${DOCKERD_PIDFILE}" ]] && kill -0 "$(cat "${DOCKERD_PIDFILE}")" 2>/dev/null \
    && docker_cli version >/dev/null 2>&1
}

start() {
  if running; then echo "DOCKER_HOST=${DOCKER_HOST}"; return 0; fi
  unpack
  mkdir -p "${DOCKER_DATA}" "${DOCKER_EXEC}" "$(dirname "${DOCKERD_SOCKET}")"
  local name
  : > "${DOCKERD_SYSCTLS}"
  for name in "${sysctls[@]}"; do
    echo "${name}=$(sysctl -n "${name}")" >> "${DOCKERD_SYSCTLS}"
  done
  if [[ -e /etc/docker ]]; then rm -f "${DOCKERD_ETC_MARK}"; else touch "${DOCKERD_ETC_MARK}"; fi
  # containerd, runc and docker-proxy are found on PATH next to dockerd.
  PATH="${DOCKER_ROOT}/usr/bin:${DOCKER_ROOT}/usr/sbin:${PATH}" setsid \
    unshare --mount --propagation private "${DOCKER_ROOT}/usr/sbin/dockerd" \
      --data-root "${DOCKER_DATA}" --exec-root "${DOCKER_EXEC}" \
      --pidfile "${DOCKERD_PIDFILE}" -H "${DOCKER_HOST}" \
      --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
      --userland-proxy=false --storage-driver overlay2 \
      > "${DOCKERD_LOG}" 2>&1 < /dev/null &
  if wait_for_dockerd "${DOCKERD_PIDFILE}" "${DOCKERD_LOG}" docker_cli version; then
    echo "DOCKER_HOST=${DOCKER_HOST}"
    return 0
  fi
  restore_host
  return 1
}

restore_host() {
  if [[ -f "${DOCKERD_SYSCTLS}" ]]; then
    local line
    while IFS= read -r line; do
      [[ -n "${line}" ]] && sysctl -q -w "${line}" >/dev/null
    done < "${DOCKERD_SYSCTLS}"
    rm -f "${DOCKERD_SYSCTLS}"
  fi
  if [[ -f "${DOCKERD_ETC_MARK}" ]]; then
    rm -f /etc/docker/key.json
    rmdir /etc/docker 2>/dev/null || true
    rm -f "${DOCKERD_ETC_MARK}"
  fi
}

stop() {
  stop_dockerd "${DOCKERD_PIDFILE}" 30
  # Its runtime state (sockets, container bundles) went with its mount namespace.
  rm -rf "${DOCKER_EXEC}"
  rmdir "$(dirname "${DOCKERD_SOCKET}")" 2>/dev/null || true
  restore_host
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
