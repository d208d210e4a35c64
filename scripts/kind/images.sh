#!/usr/bin/env bash
# The images a kind node preloads, made locally under the exact names that kubeadm, kind's
# manifests, the chart and kind/values.yaml ask for; prints their names, one a line, for
# node-image.sh. No build here has a RUN step: each image is a local rootfs or binary plus COPY,
# so nothing but the Debian mirror and PyPI (moto) is reached.
#
#   scripts/kind/images.sh BASE_TAR      (DOCKER_HOST at the kind engine; tools.sh has run)
#
# What kind's own node image holds:
#   runtime           bookworm-slim + iptables, conntrack, ca-certificates (apt in a chroot): the
#                     shared bottom layer of the images below, and local-path-provisioner's helper
#   pause             Kubernetes' own pause.c (tools.sh), as kind's containerd config and
#                     kubeadm name it
#   kube-apiserver, kube-controller-manager, kubelet's static pods: the cluster tests' builds;
#   kube-scheduler, kube-proxy                      tests/cluster/go/kind's builds
#   etcd              the cluster tests' etcd, under kubeadm's etcd image name
#   coredns           CoreDNS from the Go module proxy, at kubeadm's version
#   kindnetd          STAND-IN: tests/cluster/go/kind/cmd/kindnetd (kindnetd's source is not
#                     published), under kindnetd's name, run by kind's own manifest
#   local-path-provisioner  from the Go module proxy, under kind's image name
# What the chart and kind/values.yaml pull from registries on a user's cluster:
#   csi-provisioner   the real external-provisioner, the cluster tests' build
#   csi-node-driver-registrar  STAND-IN: tests/cluster/go/kubernetes/cmd/registrar
#   livenessprobe     STAND-IN: tests/cluster/go/kind/cmd/livenessprobe
#   motoserver/moto   moto and flask from PyPI at the versions the tests pin, in bookworm's
#                     Python (motoserver's image is the same moto server)
#   busybox           STAND-IN: the runtime image (sh and coreutils) under busybox's name, for
#                     examples/ and the e2e's apps
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/kind/paths.sh
source "${repo}/scripts/kind/paths.sh"
base_tar="${1:?usage: $0 BASE_TAR}"
runtime_image=efs-csi-kind/runtime:bookworm
kube_version="$("${TOOLS_BIN}/kubelet" --version | awk '{print $2}')"
mkdir -p "${KIND_LOGS}"

# rootfs NAME PACKAGES...: bookworm-slim with PACKAGES, unpacked under the cache; prints its path.
rootfs() {
  local name=$1 dir="${KIND_CACHE}/rootfs/$1"; shift
  rm -rf "${dir}"
  mkdir -p "${dir}"
  tar -C "${dir}" --numeric-owner -xpf "${base_tar}"
  [[ -s "${dir}/debuerreotype-epoch" ]] || date +%s > "${dir}/debuerreotype-epoch"
  cp /etc/resolv.conf "${dir}/etc/resolv.conf"
  debuerreotype-apt-get "${dir}" update -qq
  debuerreotype-apt-get "${dir}" install -y -qq --no-install-recommends "$@" \
    > "${KIND_LOGS}/apt-${name}.log"
  echo "${dir}"
}

# import DIR IMAGE CHANGE...: the rootfs as a one-layer image, then removed.
import() {
  local dir=$1 image=$2; shift 2
  debuerreotype-chroot "${dir}" sh -c \
    'apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/* /tmp/*'
  rm -f "${dir}/etc/resolv.conf" "${dir}/debuerreotype-epoch"
  local changes=() change
  for change in "$@"; do changes+=(--change "${change}"); done
  tar -C "${dir}" --numeric-owner -cf - . | docker import "${changes[@]}" - "${image}" >/dev/null
  rm -rf "${dir}"
}

present() { docker image inspect "$1" >/dev/null 2>&1; }

if ! present "${runtime_image}"; then
  dir="$(rootfs runtime iptables conntrack ca-certificates)"
  import "${dir}" "${runtime_image}" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
fi

# The moto server, keyed by the versions the tests pin (pyproject.toml).
pins="$(grep -oE '"(moto|boto3|botocore|flask|flask-cors)==[^"]+"' "${repo}/pyproject.toml" | tr -d '"' | sort | tr '\n' ' ')"
moto_key="$(printf '%s' "${pins}" | sha256sum | cut -c1-12)"
if ! present "efs-csi-kind/moto:${moto_key}"; then
  dir="$(rootfs moto python3 python3-venv ca-certificates)"
  cp /etc/ssl/certs/ca-certificates.crt "${dir}/tmp/build-ca.crt"   # an intercepting proxy's CA
  # shellcheck disable=SC2086  # the pins are words
  debuerreotype-chroot "${dir}" sh -euc "
    python3 -m venv /opt/moto
    PIP_CERT=/tmp/build-ca.crt /opt/moto/bin/pip install -q --no-cache-dir ${pins}" \
    > "${KIND_LOGS}/moto-pip.log" 2>&1
  import "${dir}" "efs-csi-kind/moto:${moto_key}" \
    'ENV PATH=/opt/moto/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'EXPOSE 5000' 'ENTRYPOINT ["/opt/moto/bin/moto_server", "-H", "0.0.0.0", "-p", "5000"]'
fi
docker tag "efs-csi-kind/moto:${moto_key}" "${MOTO_IMAGE}"

# image NAME FROM BINARY:PATH [ENTRYPOINT-JSON]: FROM + one COPY (+ ENTRYPOINT), built only
# when the binary changed (its digest labels the image).
image() {
  local name=$1 from=$2 copy=$3 entrypoint=${4:-}
  local binary="${copy%%:*}" path="${copy#*:}" digest
  digest="$(sha256sum "${binary}" | cut -c1-16)"
  if [[ "$(docker image inspect -f '{{index .Config.Labels "efs-csi.kind/binary"}}' "${name}" 2>/dev/null)" \
        == "${digest}" ]]; then
    echo "${name}"
    return 0
  fi
  local context="${KIND_CACHE}/context/image"
  rm -rf "${context}"
  mkdir -p "${context}"
  cp "${binary}" "${context}/"
  { echo "FROM ${from}"
    echo "LABEL efs-csi.kind/binary=${digest}"
    echo "COPY $(basename "${binary}") ${path}"
    [[ -z "${entrypoint}" ]] || echo "ENTRYPOINT ${entrypoint}"
  } > "${context}/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "${name}" "${context}" >/dev/null
  echo "${name}"
}

kubeadm_image() { "${KIND_BIN}/kubeadm" config images list --kubernetes-version "${kube_version}" | grep "/$1:"; }
# The chart's sidecar image names (helm/values.yaml), as a user's cluster would pull them.
sidecar_image() {
  awk -v key="$1" '$0 ~ "^  " key ":" {found=1}
                   found && /repository:/ {repository=$2}
                   found && /tag:/ {print repository ":" $2; exit}' "${repo}/helm/values.yaml"
}

image registry.k8s.io/pause:3.10 scratch "${KIND_BIN}/pause:/pause" '["/pause"]'
docker tag registry.k8s.io/pause:3.10 "$(kubeadm_image pause)"
echo registry.k8s.io/pause:3.10
kubeadm_image pause
for component in kube-apiserver kube-controller-manager; do
  image "$(kubeadm_image "${component}")" "${runtime_image}" "${TOOLS_BIN}/${component}:/usr/local/bin/${component}"
done
for component in kube-scheduler kube-proxy; do
  image "$(kubeadm_image "${component}")" "${runtime_image}" "${KIND_BIN}/${component}:/usr/local/bin/${component}"
done
image "$(kubeadm_image etcd)" "${runtime_image}" "${TOOLS_BIN}/etcd:/usr/local/bin/etcd"
image "$(kubeadm_image coredns)" "${runtime_image}" "${KIND_BIN}/coredns:/coredns" '["/coredns"]'
image "${KINDNETD_IMAGE}" "${runtime_image}" "${KIND_BIN}/kindnetd:/bin/kindnetd" '["/bin/kindnetd"]'
image "${LOCAL_PATH_PROVISIONER_IMAGE}" "${runtime_image}" \
  "${KIND_BIN}/local-path-provisioner:/usr/bin/local-path-provisioner"
docker tag "${runtime_image}" "${LOCAL_PATH_HELPER_IMAGE}"
echo "${LOCAL_PATH_HELPER_IMAGE}"

image "$(sidecar_image csiProvisioner)" "${runtime_image}" \
  "${TOOLS_BIN}/csi-provisioner:/csi-provisioner" '["/csi-provisioner"]'
image "$(sidecar_image nodeDriverRegistrar)" "${runtime_image}" \
  "${TOOLS_BIN}/registrar:/csi-node-driver-registrar" '["/csi-node-driver-registrar"]'
image "$(sidecar_image livenessProbe)" "${runtime_image}" \
  "${KIND_BIN}/livenessprobe:/livenessprobe" '["/livenessprobe"]'
echo "${MOTO_IMAGE}"
docker tag "${runtime_image}" "${BUSYBOX_IMAGE}"
echo "${BUSYBOX_IMAGE}"
