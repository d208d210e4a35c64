#!/usr/bin/env bash
# Make the Debian base the images build FROM, locally, the way the official debian:bookworm-slim
# is made: debuerreotype (Debian's tool for those images) on the Debian mirror apt already uses,
# its minimizing config (apt keeps no .debs or lists, no docs or locales), bookworm-updates and
# -security upgrades, slimify, then a reproducible tar. CI needs it because no container
# registry is reachable; users pull debian:bookworm-slim instead.
#
# Usage: scripts/images/base.sh IMAGE_NAME   (needs the daemon of dockerd.sh)
# The tar is cached in $EFS_CSI_IMAGES_CACHE/base; a warm run only imports it when the daemon
# lacks the image, and does nothing when it has it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/images/paths.sh
source "${repo}/scripts/images/paths.sh"

image="${1:?usage: $0 IMAGE_NAME}"
suite=bookworm
base_dir="${EFS_CSI_IMAGES_CACHE}/base"
tarball="${base_dir}/${suite}-slim.tar"
docker_cli() { "${DOCKER_CLI}" -H "${DOCKER_HOST}" "$@"; }

if docker_cli image inspect "${image}" >/dev/null 2>&1; then
  echo "base: ${image} already present"
  exit 0
fi

if [[ ! -s "${tarball}" ]]; then
  command -v debuerreotype-init >/dev/null || {
    apt-get update -qq && apt-get install -y -qq --no-install-recommends debuerreotype debootstrap
  }
  mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null \
            || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  rootfs="${base_dir}/rootfs"
  rm -rf "${rootfs}"
  mkdir -p "${base_dir}"
  echo "base: debuerreotype ${suite} from ${mirror}"
  debuerreotype-init --non-debian "${rootfs}" "${suite}" "${mirror}"
  debuerreotype-minimizing-config "${rootfs}"
  rm -f "${rootfs}/etc/apt/sources.list"
  cat > "${rootfs}/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: ${mirror}
Suites: ${suite} ${suite}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: ${suite}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  debuerreotype-apt-get "${rootfs}" update -qq
  debuerreotype-apt-get "${rootfs}" dist-upgrade -yqq
  debuerreotype-slimify "${rootfs}"
  rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/*.bin \
         "${rootfs}"/var/cache/apt/archives/*.deb
  rm -f "${rootfs}/etc/resolv.conf" "${rootfs}/etc/hostname"
  debuerreotype-tar "${rootfs}" "${tarball}.partial"
  mv "${tarball}.partial" "${tarball}"
  rm -rf "${rootfs}"
fi

echo "base: importing ${tarball} as ${image}"
docker_cli import --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  "${tarball}" "${image}" >/dev/null
