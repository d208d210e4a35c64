#!/usr/bin/env bash
# The Docker engine kind runs on where no Docker is installed (CI, this project's machines):
# Debian's docker.io, containerd and runc (unpacked under .tools/docker by scripts/images) and
# Debian's iptables for its rules (unpacked under .tools/kind/iptables): nothing installed. It
# runs in a network namespace of its own. kind's bridge network, its NAT and
# embedded-DNS rules, the API servers' published ports, kube-proxy's rules, IP forwarding and
# every container's traffic stay in that namespace, which has only loopback and what the engine
# makes: nothing of the engine touches the host's network, and nothing in it can reach an
# outside address (no route leaves the namespace). Its mount namespace is private too.
#
# Usage: scripts/kind/engine.sh start|stop|status|restore|host-rules|run COMMAND...
#   start    start the engine unless it runs; records the kernel settings it and kind's kubelets
#            change (dockerd: kernel.keys.root_maxkeys/root_maxbytes; every kubelet of a kind
#            node: kernel.panic, kernel.panic_on_oops, vm.overcommit_memory, which are global)
#   restore  put those settings back as start found them (after a kind node's kubelet started)
#   stop     stop the engine (by its pid), restore the settings, delete the namespace and
#            what else start made (/lib/modules, which kind mounts into every node, and
#            /etc/docker, where dockerd writes its trust key)
#   run      run COMMAND inside the namespace, with DOCKER_HOST, KUBECONFIG and PATH set for
#            kind, docker, kubectl and helm (`nsenter --net`: `ip netns exec` remounts /sys,
#            which hides the cgroup mounts dockerd needs)
#   host-rules  print the host namespace's firewall tables (with the unpacked iptables)
#
# Root here lacks CAP_SYS_RESOURCE, and Docker 20.10 asks runc for every capability under
# --privileged (kind's nodes): runc-wrapper.sh, the engine's default runtime, drops the ones
# this process may not hand out.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/kind/paths.sh
source "${repo}/scripts/kind/paths.sh"
# shellcheck source=scripts/images/dockerd-process.sh
source "${repo}/scripts/images/dockerd-process.sh"

sysctls=(kernel.keys.root_maxkeys kernel.keys.root_maxbytes
         kernel.panic kernel.panic_on_oops vm.overcommit_memory)
netns_path="/run/netns/${KIND_NETNS}"

in_netns() {
  nsenter --net="${netns_path}" env DOCKER_HOST="${KIND_DOCKER_HOST}" \
    KUBECONFIG="${KUBECONFIG:-${KIND_KUBECONFIG}}" \
    PATH="${DOCKER_ROOT}/usr/bin:${TOOLS_BIN}:${PATH}" "$@"
}

packages() {
  local missing=()
  command -v capsh >/dev/null || missing+=(libcap2-bin)   # runc-wrapper.sh
  command -v jq >/dev/null || missing+=(jq)
  command -v nsenter >/dev/null || missing+=(util-linux)
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "engine: installing ${missing[*]} from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

unpack() {
  [[ -x "${DOCKER_ROOT}/usr/sbin/dockerd" ]] && return 0
  echo "engine: unpacking Debian's docker.io, containerd and runc into ${DOCKER_ROOT}" >&2
  mkdir -p "${DOCKER_DEBS}"
  (cd "${DOCKER_DEBS}" && apt-get download -qq docker.io containerd runc 2>/dev/null) || {
    apt-get update -qq && (cd "${DOCKER_DEBS}" && apt-get download -qq docker.io containerd runc)
  }
  local deb
  for deb in "${DOCKER_DEBS}"/*.deb; do dpkg-deb -x "${deb}" "${DOCKER_ROOT}"; done
}

# iptables with its libraries and extensions under KIND_IPTABLES_ROOT; bin/ holds the names
# dockerd calls (the multi-call binary picks its part by name).
iptables_packages=(iptables libip4tc2 libip6tc2 libxtables12 libnftnl11 libnetfilter-conntrack3
                   libnfnetlink0 libmnl0)
unpack_iptables() {
  [[ -x "${KIND_IPTABLES_ROOT}/bin/iptables" ]] && return 0
  echo "engine: unpacking Debian's iptables into ${KIND_IPTABLES_ROOT}" >&2
  local debs="${KIND_IPTABLES_ROOT}.debs" deb name
  rm -rf "${KIND_IPTABLES_ROOT}" "${debs}"
  mkdir -p "${debs}" "${KIND_IPTABLES_ROOT}/bin"
  (cd "${debs}" && apt-get download -qq "${iptables_packages[@]}" 2>/dev/null) || {
    apt-get update -qq && (cd "${debs}" && apt-get download -qq "${iptables_packages[@]}")
  }
  for deb in "${debs}"/*.deb; do dpkg-deb -x "${deb}" "${KIND_IPTABLES_ROOT}"; done
  rm -rf "${debs}"
  for name in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf ../usr/sbin/xtables-nft-multi "${KIND_IPTABLES_ROOT}/bin/${name}"
  done
  iptables_env "${KIND_IPTABLES_ROOT}/bin/iptables" --version >/dev/null
}

iptables_vars() {
  export PATH="${KIND_IPTABLES_ROOT}/bin:${PATH}"
  export LD_LIBRARY_PATH="${KIND_IPTABLES_ROOT}/usr/lib/x86_64-linux-gnu"
  export XTABLES_LIBDIR="${KIND_IPTABLES_ROOT}/usr/lib/x86_64-linux-gnu/xtables"
}
iptables_env() { (iptables_vars; "$@"); }

# The host namespace's firewall rules (tests/kind compares them before and after a run).
host_rules() {
  unpack_iptables
  iptables_env iptables-save
  iptables_env ip6tables-save
}

docker_ok() { DOCKER_HOST="${KIND_DOCKER_HOST}" "${DOCKER_CLI}" version >/dev/null 2>&1; }

running() {
  [[ -f "${KIND_DOCKERD_PIDFILE}" ]] && kill -0 "$(cat "${KIND_DOCKERD_PIDFILE}")" 2>/dev/null \
    && docker_ok
}

# Records, once, what start and kind's nodes change: a restart keeps the first record.
record() {
  mkdir -p "${KIND_STATE}"
  if [[ ! -s "${KIND_STATE}/sysctls" ]]; then
    local name
    for name in "${sysctls[@]}"; do echo "${name}=$(sysctl -n "${name}")"; done \
      > "${KIND_STATE}/sysctls.partial"
    mv "${KIND_STATE}/sysctls.partial" "${KIND_STATE}/sysctls"
  fi
  # kind mounts the host's /lib/modules into every node; docker makes it when it is missing.
  [[ -e /lib/modules || -e "${KIND_STATE}/made-lib-modules" ]] \
    || touch "${KIND_STATE}/made-lib-modules"
  [[ -e /etc/docker || -e "${KIND_STATE}/made-etc-docker" ]] || touch "${KIND_STATE}/made-etc-docker"
}

restore() {
  [[ -s "${KIND_STATE}/sysctls" ]] || return 0
  local line now=()
  while IFS= read -r line; do
    [[ -n "${line}" ]] || continue
    sysctl -q -w "${line}" >/dev/null
    now+=("${line%%=*}=$(sysctl -n "${line%%=*}")")
  done < "${KIND_STATE}/sysctls"
  echo "engine: kernel settings put back: ${now[*]}" >&2
}

start() {
  if running; then echo "DOCKER_HOST=${KIND_DOCKER_HOST}"; return 0; fi
  packages
  unpack
  unpack_iptables
  record
  mkdir -p "${KIND_DOCKER_DATA}" "${KIND_DOCKER_EXEC}" "${KIND_LOGS}"
  if [[ ! -e "${netns_path}" ]]; then
    ip netns add "${KIND_NETNS}"
  fi
  ip -n "${KIND_NETNS}" link set lo up
  sed "s|^real=.*|real=\"${DOCKER_ROOT}/usr/sbin/runc\"|" "${repo}/scripts/kind/runc-wrapper.sh" \
    > "${KIND_STATE}/runc"
  chmod 0755 "${KIND_STATE}/runc"
  echo '{}' > "${KIND_STATE}/daemon.json"
  # dockerd writes its trust key to /etc/docker/key.json: stop removes it when start made it.
  nsenter --net="${netns_path}" setsid unshare --mount --propagation private \
    env PATH="${DOCKER_ROOT}/usr/bin:${DOCKER_ROOT}/usr/sbin:${PATH}" \
    "${repo}/scripts/kind/engine.sh" iptables-env "${DOCKER_ROOT}/usr/sbin/dockerd" \
      --data-root "${KIND_DOCKER_DATA}" --exec-root "${KIND_DOCKER_EXEC}" \
      --pidfile "${KIND_DOCKERD_PIDFILE}" -H "${KIND_DOCKER_HOST}" \
      --config-file "${KIND_STATE}/daemon.json" \
      --bridge=none --storage-driver overlay2 \
      --add-runtime "efs-csi-kind-runc=${KIND_STATE}/runc" --default-runtime efs-csi-kind-runc \
      > "${KIND_LOGS}/dockerd.log" 2>&1 < /dev/null &
  if wait_for_dockerd "${KIND_DOCKERD_PIDFILE}" "${KIND_LOGS}/dockerd.log" docker_ok; then
    echo "DOCKER_HOST=${KIND_DOCKER_HOST}"
    return 0
  fi
  stop
  return 1
}

stop() {
  stop_dockerd "${KIND_DOCKERD_PIDFILE}" 45
  # Whatever still runs in the namespace was started by this engine (a container shim left by a
  # daemon that was killed): stopped by pid before the namespace goes.
  if [[ -e "${netns_path}" ]]; then
    local left
    left="$(ip netns pids "${KIND_NETNS}" | tr '\n' ' ')"
    if [[ -n "${left// }" ]]; then
      echo "engine: stopping what is left in ${KIND_NETNS}: ${left}" >&2
      # shellcheck disable=SC2086  # a list of pids
      kill -KILL ${left} 2>/dev/null || true
    fi
  fi
  # Its runtime state (sockets, bundles) went with its mount namespace; its network with this.
  rm -rf "${KIND_DOCKER_EXEC}"
  rmdir "${KIND_SHORT_DIR}" 2>/dev/null || true
  if [[ -e "${netns_path}" ]]; then ip netns delete "${KIND_NETNS}"; fi
  if [[ -f "${KIND_STATE}/made-etc-docker" ]]; then
    rm -f /etc/docker/key.json
    rmdir /etc/docker 2>/dev/null || true
    rm -f "${KIND_STATE}/made-etc-docker"
  fi
  if [[ -f "${KIND_STATE}/made-lib-modules" ]]; then
    rmdir /lib/modules 2>/dev/null || true
    rm -f "${KIND_STATE}/made-lib-modules"
  fi
  restore
  rm -f "${KIND_STATE}/sysctls"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running ;;
  restore) restore ;;
  run) shift; in_netns "$@" ;;
  host-rules) host_rules ;;
  iptables-env) shift; iptables_vars; exec "$@" ;;   # dockerd's start: its iptables
  *) echo "usage: $0 start|stop|status|restore|host-rules|run COMMAND..." >&2; exit 2 ;;
esac
