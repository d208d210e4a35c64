#!/usr/bin/env bash
# kind's base image (kind's images/base/Dockerfile), made without a registry: the Debian
# bookworm-slim rootfs scripts/images/base.sh makes, the packages kind's Dockerfile installs
# (apt in a chroot, from the Debian mirror), Debian's containerd / runc / CNI plugins where kind
# builds its own from GitHub, crictl from the Go module proxy (tools.sh), kind's own files/ and
# systemd trimming from its module source, then kind's image config.
#
#   scripts/kind/base-image.sh BASE_TAR IMAGE     (run by scripts/kind-node-image.sh, with
#                                                  DOCKER_HOST at the kind engine)
#
# Differences from kind's base, none of which a cluster of ours meets:
# - bookworm, not trixie: the glibc the cluster tests' dynamically linked Kubernetes binaries
#   were built against;
# - containerd 1.6 / runc 1.1 / CNI plugins 1.1 (Debian's), not containerd 2.3 / runc 1.4 /
#   CNI 1.9; kind's version-2 containerd config works unchanged with containerd 1.6, and
#   `ctr version` replaces kind's `ctr info` wait, which containerd 1.6 lacks;
# - restrict_oom_score_adj = true: root here lacks CAP_SYS_RESOURCE, so runc cannot lower a
#   container's oom_score_adj below its parent's (kind sets it only for rootless nodes);
# - no fuse-overlayfs snapshotter, nfs-common or open-iscsi (rootless and storage e2e only).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/kind/paths.sh
source "${repo}/scripts/kind/paths.sh"
base_tar="${1:?usage: $0 BASE_TAR IMAGE}"
image="${2:?usage: $0 BASE_TAR IMAGE}"
files="$(cd "${repo}/tests/cluster/go/kind" && go env GOMODCACHE)/sigs.k8s.io/kind@${KIND_VERSION}/images/base/files"
[[ -d "${files}" ]] || (cd /tmp && GOFLAGS=-modcacherw go mod download "sigs.k8s.io/kind@${KIND_VERSION}")

rootfs="${KIND_CACHE}/rootfs/base"
rm -rf "${rootfs}"
mkdir -p "${rootfs}" "${KIND_LOGS}"
trap 'rm -rf "${rootfs}"' EXIT
tar -C "${rootfs}" --numeric-owner -xpf "${base_tar}"
[[ -s "${rootfs}/debuerreotype-epoch" ]] || date +%s > "${rootfs}/debuerreotype-epoch"
cp /etc/resolv.conf "${rootfs}/etc/resolv.conf"   # for apt in the chroot; removed below
echo "base: apt-get install (kind's packages, Debian's containerd, runc and CNI plugins)" >&2
debuerreotype-apt-get "${rootfs}" update -qq
debuerreotype-apt-get "${rootfs}" install -y -qq --no-install-recommends \
  systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod \
  libseccomp2 pigz e2fsprogs bash ca-certificates curl jq procps \
  containerd runc containernetworking-plugins > "${KIND_LOGS}/base-apt.log"

# kind's files/ and its Dockerfile's steps
install -m 0755 "${files}"/usr/local/bin/* "${rootfs}/usr/local/bin/"
mkdir -p "${rootfs}/kind/bin" "${rootfs}/etc/containerd" "${rootfs}/etc/default" \
  "${rootfs}/etc/sysctl.d" "${rootfs}/etc/systemd/system/kubelet.service.d" "${rootfs}/LICENSES"
cp -r "${files}/kind/." "${rootfs}/kind/"
chmod -R u+rwX,go+rX "${rootfs}/kind"
chmod 0755 "${rootfs}/kind" "${rootfs}/kind/bin" "${rootfs}"/kind/bin/*
install -m 0644 "${files}/etc/crictl.yaml" "${rootfs}/etc/"
install -m 0644 "${files}/etc/containerd/config.toml" "${rootfs}/etc/containerd/"
install -m 0644 "${files}"/etc/default/* "${rootfs}/etc/default/"
install -m 0644 "${files}"/etc/sysctl.d/* "${rootfs}/etc/sysctl.d/"
find "${files}/etc/systemd/system" -maxdepth 1 -type f -exec install -m 0644 {} "${rootfs}/etc/systemd/system/" \;
install -m 0644 "${files}"/etc/systemd/system/kubelet.service.d/* \
  "${rootfs}/etc/systemd/system/kubelet.service.d/"
sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' \
  "${rootfs}/etc/containerd/config.toml"
grep -q 'restrict_oom_score_adj = true' "${rootfs}/etc/containerd/config.toml"
# Debian's binaries where kind's units and configuration look for its own builds.
ln -sf /usr/bin/containerd "${rootfs}/usr/local/bin/containerd"
ln -sf /usr/bin/containerd-shim-runc-v2 "${rootfs}/usr/local/bin/containerd-shim-runc-v2"
ln -sf /usr/bin/ctr "${rootfs}/usr/local/bin/ctr"
ln -sf /usr/sbin/runc "${rootfs}/usr/local/sbin/runc"
install -m 0755 "${KIND_BIN}/crictl" "${rootfs}/usr/local/bin/crictl"
mkdir -p "${rootfs}/opt/cni/bin"
for plugin in host-local loopback ptp portmap; do
  ln -sf "/usr/lib/cni/${plugin}" "${rootfs}/opt/cni/bin/${plugin}"
done
debuerreotype-chroot "${rootfs}" sh -euc '
  find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete
  rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
        /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
        /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >> /etc/systemd/journald.conf
  ln -sf /usr/lib/systemd/systemd /sbin/init
  systemctl enable kubelet.service containerd.service undo-mount-hacks.service
  systemctl mask systemd-binfmt.service
  mkdir -p /etc/kubernetes/manifests
  ctr oci spec \
    | jq ".hooks.createContainer[.hooks.createContainer | length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" \
    | jq "del(.process.rlimits)" > /etc/containerd/cri-base.json
  apt-get clean
  rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/* /tmp/* /var/tmp/*' \
  >> "${KIND_LOGS}/base-apt.log" 2>&1
debuerreotype-chroot "${rootfs}" dpkg-query -W containerd runc containernetworking-plugins systemd \
  | sed 's/^/base: /' >&2
rm -f "${rootfs}/etc/resolv.conf" "${rootfs}/debuerreotype-epoch"
: > "${rootfs}/etc/machine-id"

# One layer with kind's image config. `docker import --change` takes no STOPSIGNAL, so a build
# without RUN steps sets the config on the imported layer.
tar -C "${rootfs}" --numeric-owner -cf - . | docker import - "${image}-rootfs" >/dev/null
context="${KIND_CACHE}/context/base"
rm -rf "${context}"
mkdir -p "${context}"
printf '%s\n' "FROM ${image}-rootfs" 'ENV container=docker' \
  'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  'STOPSIGNAL SIGRTMIN+3' 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
  > "${context}/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "${image}" "${context}" >/dev/null
docker rmi "${image}-rootfs" >/dev/null   # the tag only: the layer is the base's
echo "base: ${image}" >&2
