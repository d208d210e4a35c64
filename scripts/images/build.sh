#!/usr/bin/env bash
# Build the three images of docker/Dockerfile with BuildKit, on a machine without a registry or a
# Docker engine of its own (CI, this project's dev machines), and print where the time went.
#
#   scripts/images/build.sh [--keep-daemon] [TARGET...]     (default: controller node controller-efs)
#
# - Engine: dockerd from Debian's packages (dockerd.sh), started here unless already running and
#   stopped again at the end unless --keep-daemon. Data and build cache stay in
#   $EFS_CSI_IMAGES_CACHE, so a second run is mostly cache hits.
# - Base: BASE_IMAGE if set (e.g. debian:bookworm-slim where a registry is reachable), else one
#   made locally with debuerreotype (base.sh).
# - efs-utils: EFS_UTILS_SOURCE=vendored (default when the bundle exists: the real release from
#   the git bundle $EFS_UTILS_BUNDLE, by default ../shared/vendor/efs-utils-v3.2.0.bundle beside
#   the checkout), =upstream (the repository written in the Dockerfile), or =/path/to/a/git/
#   repository of efs-utils. A local repository is served by git daemon on 127.0.0.1 and checked
#   against the Dockerfile's pinned tag, commit and tree checksum, as the upstream one would be.
# - efs-proxy: EFS_PROXY_FROM=prebuilt (default with a local efs-utils repository): built once
#   per efs-utils commit and Rust toolchain by efs-proxy.sh (cached in .cache/efs-proxy), served
#   on 127.0.0.1 and checked by digest in the image build (EFS_PROXY_BINARY: one built
#   elsewhere from the same commit); =source compiles it in the image build, as users' do.
# - Images are tagged efs-csi-<target>:$IMAGE_TAG (default: dev). A JSON report with the phase
#   times and image sizes goes to $EFS_CSI_IMAGES_CACHE/report.json.
# - SBOMs: each image makes its own as its last build step (docker/sbom.py, in the image at
#   /usr/share/efs-csi/sbom.cdx.json); they are copied to $EFS_CSI_IMAGES_CACHE/sbom/ (only when
#   the image changed), and the report gives each one's component counts and the step's time.
# - BUILD_CA (default: the host's CA bundle) is passed as the build-ca secret, for machines
#   whose egress TLS is intercepted.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/images/paths.sh
source "${repo}/scripts/images/paths.sh"

keep_daemon=false
targets=()
for arg in "$@"; do
  case "${arg}" in
    --keep-daemon) keep_daemon=true ;;
    -*) echo "unknown option ${arg}" >&2; exit 2 ;;
    *) targets+=("${arg}") ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(controller node controller-efs)
tag="${IMAGE_TAG:-dev}"
# The vendored release: beside a CI clone (../shared) or a worktree two levels down (../../shared).
bundle="${EFS_UTILS_BUNDLE:-}"
if [[ -z "${bundle}" ]]; then
  for candidate in "${repo}/../shared/vendor" "${repo}/../../shared/vendor"; do
    if [[ -f "${candidate}/efs-utils-v3.2.0.bundle" ]]; then
      bundle="$(cd "${candidate}" && pwd)/efs-utils-v3.2.0.bundle"; break
    fi
  done
fi
if [[ -n "${bundle}" ]]; then source_kind="${EFS_UTILS_SOURCE:-vendored}"
else source_kind="${EFS_UTILS_SOURCE:-upstream}"; fi
if [[ "${source_kind}" == upstream ]]; then proxy_from="${EFS_PROXY_FROM:-source}"
else proxy_from="${EFS_PROXY_FROM:-prebuilt}"; fi
build_ca="${BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}"
base_image="${BASE_IMAGE:-}"

mkdir -p "${EFS_CSI_IMAGES_CACHE}"
times_file="${EFS_CSI_IMAGES_CACHE}/times.tsv"
: > "${times_file}"
started_daemon=false
git_daemon_pid=""
http_pid=""

cleanup() {
  if [[ -n "${git_daemon_pid}" ]]; then kill "${git_daemon_pid}" 2>/dev/null || true; fi
  if [[ -n "${http_pid}" ]]; then kill "${http_pid}" 2>/dev/null || true; fi
  if [[ "${started_daemon}" == true && "${keep_daemon}" == false ]]; then
    "${repo}/scripts/images/dockerd.sh" stop
  fi
}
trap cleanup EXIT

# Runs "$@" as phase $1 and records its wall time.
phase() {
  local name="$1"; shift
  local start=${EPOCHREALTIME}
  echo "== ${name}" >&2
  "$@"
  printf '%s\t%s\n' "${name}" "$(echo "${EPOCHREALTIME} - ${start}" | bc)" >> "${times_file}"
}

docker_cli() { "${DOCKER_CLI}" -H "${DOCKER_HOST}" "$@"; }

packages() {
  local missing=()
  command -v git >/dev/null || missing+=(git)
  command -v bc >/dev/null || missing+=(bc)
  if [[ -z "${base_image}" ]]; then
    command -v debuerreotype-init >/dev/null || missing+=(debuerreotype)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
  fi
  if [[ ${#missing[@]} -gt 0 ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

engine() {
  if ! "${repo}/scripts/images/dockerd.sh" status; then
    "${repo}/scripts/images/dockerd.sh" start >/dev/null
    started_daemon=true
  fi
}

base() {
  if [[ -z "${base_image}" ]]; then
    base_image="efs-csi-build/debian:bookworm-slim"
    "${repo}/scripts/images/base.sh" "${base_image}"
  fi
}

# Serves a git repository on 127.0.0.1 (git daemon, read only) and sets efs_utils_url.
serve_git() {
  local git_dir="$1" port
  port="$(free_port)"
  git daemon --listen=127.0.0.1 --port="${port}" --export-all --reuseaddr \
    --base-path="$(dirname "${git_dir}")" "$(dirname "${git_dir}")" \
    >"${EFS_CSI_IMAGES_CACHE}/git-daemon.log" 2>&1 &
  git_daemon_pid=$!
  efs_utils_url="git://127.0.0.1:${port}/$(basename "${git_dir}")"
  local attempt
  for attempt in $(seq 1 50); do
    git ls-remote "${efs_utils_url}" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "git daemon did not come up (${attempt} tries):" >&2
  cat "${EFS_CSI_IMAGES_CACHE}/git-daemon.log" >&2
  return 1
}

# A free port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The Dockerfile's pins (the ARG defaults), which every source must match.
pinned() { sed -n "s/^ARG $1=//p" "${repo}/docker/Dockerfile" | head -1; }

efs_utils_args=()
efs_utils_git=""
efs_utils() {
  case "${source_kind}" in
    upstream) return 0 ;;
    vendored)
      # A bare repository made from the bundle once; the Dockerfile fetches the tag from it.
      efs_utils_git="${EFS_CSI_IMAGES_CACHE}/efs-utils.git"
      if [[ ! -d "${efs_utils_git}" ]]; then
        rm -rf "${efs_utils_git}.tmp"
        git clone --quiet --bare "${bundle}" "${efs_utils_git}.tmp"
        mv "${efs_utils_git}.tmp" "${efs_utils_git}"
      fi
      ;;
    /*) efs_utils_git="$(cd "${source_kind}" && git rev-parse --absolute-git-dir)" ;;
    *) echo "EFS_UTILS_SOURCE must be vendored, upstream or an absolute path" >&2; return 2 ;;
  esac
  # Only the transport changes: the Dockerfile's tag, commit and tree checksum apply.
  serve_git "${efs_utils_git}"
  efs_utils_args=(--build-arg "EFS_UTILS_REPOSITORY=${efs_utils_url}")
}

# EFS_PROXY_FROM=prebuilt: the cached binary (efs-proxy.sh builds it on a cold run), served by a
# loopback HTTP server for the Dockerfile's efs-proxy-prebuilt stage.
efs_proxy_args=()
efs_proxy() {
  efs_proxy_args=(--build-arg "EFS_PROXY_FROM=${proxy_from}")
  case "${proxy_from}" in
    source) return 0 ;;
    prebuilt) ;;
    *) echo "EFS_PROXY_FROM must be prebuilt or source" >&2; return 2 ;;
  esac
  if [[ -z "${efs_utils_git}" ]]; then
    echo "EFS_PROXY_FROM=prebuilt needs a local efs-utils repository (EFS_UTILS_SOURCE)" >&2
    return 2
  fi
  local binary port digest attempt
  # EFS_PROXY_BINARY: one built elsewhere (same commit), instead of the cache.
  binary="${EFS_PROXY_BINARY:-}"
  if [[ -z "${binary}" ]]; then
    binary="$("${repo}/scripts/images/efs-proxy.sh" "${efs_utils_git}" "$(pinned EFS_UTILS_COMMIT)")"
  fi
  digest="$(sha256sum "${binary}" | cut -d' ' -f1)"
  port="$(free_port)"
  python3 -m http.server --bind 127.0.0.1 --directory "$(dirname "${binary}")" "${port}" \
    > "${EFS_CSI_IMAGES_CACHE}/efs-proxy-http.log" 2>&1 &
  http_pid=$!
  for attempt in $(seq 1 50); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${port}/', timeout=1)" \
      2>/dev/null && break
    sleep 0.1
  done
  efs_proxy_args+=(--build-arg "EFS_PROXY_URL=http://127.0.0.1:${port}/efs-proxy"
                   --build-arg "EFS_PROXY_SHA256=${digest}")
}

build() {
  local target="$1"
  local version revision
  version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "${repo}/efs_csi/_version.py")"
  revision="$(git -C "${repo}" rev-parse HEAD 2>/dev/null || echo unknown)"
  local args=(build --network host --progress plain -f "${repo}/docker/Dockerfile"
              --target "${target}" -t "efs-csi-${target}:${tag}"
              --build-arg "BASE_IMAGE=${base_image}"
              --build-arg "VERSION=${version}" --build-arg "REVISION=${revision}"
              --build-arg "NODE_EXTRAS=${NODE_EXTRAS:-}"  # local: kind's backend (scripts/kind-ci.sh)
              "${efs_utils_args[@]}" "${efs_proxy_args[@]}")
  if [[ -s "${build_ca}" ]]; then args+=(--secret "id=build-ca,src=${build_ca}"); fi
  local log="${EFS_CSI_IMAGES_CACHE}/build-${target}.log"
  if ! DOCKER_BUILDKIT=1 docker_cli "${args[@]}" "${repo}" > "${log}" 2>&1; then
    echo "build of ${target} failed; the end of ${log}:" >&2
    tail -40 "${log}" >&2
    return 1
  fi
  local cached total
  cached="$(grep -c ' CACHED$' "${log}" || true)"
  total="$(grep -cE '^#[0-9]+ \[' "${log}" || true)"
  echo "${target}: ${cached} of ${total} steps from cache" >&2
  # The SBOM step's own time in this build ("cached" when BuildKit reused it).
  local step outcome
  step="$(grep -E '^#[0-9]+ \[.*sbom\.py' "${log}" | head -1 | cut -d' ' -f1 || true)"
  outcome="$(grep -E "^${step} (DONE [0-9.]+s|CACHED)$" "${log}" | tail -1 | cut -d' ' -f2- || true)"
  outcome="${outcome#DONE }"
  printf '%s\t%s\n' "${target}" "${outcome:-missing}" >> "${sbom_steps}"
}

# Copies an image's SBOM out of it (without starting a container) unless the copy is current.
sbom_dir="${EFS_CSI_IMAGES_CACHE}/sbom"
sbom_steps="${EFS_CSI_IMAGES_CACHE}/sbom-steps.tsv"
: > "${sbom_steps}"
copy_sbom() {
  local target="$1" image="efs-csi-$1:${tag}" id container
  mkdir -p "${sbom_dir}"
  id="$(docker_cli image inspect --format '{{.Id}}' "${image}")"
  if [[ -s "${sbom_dir}/${target}.cdx.json" \
        && "$(cat "${sbom_dir}/${target}.image-id" 2>/dev/null)" == "${id}" ]]; then
    return 0
  fi
  container="$(docker_cli create "${image}")"
  docker_cli cp "${container}:/usr/share/efs-csi/sbom.cdx.json" "${sbom_dir}/${target}.partial"
  docker_cli rm "${container}" >/dev/null
  mv "${sbom_dir}/${target}.partial" "${sbom_dir}/${target}.cdx.json"
  echo "${id}" > "${sbom_dir}/${target}.image-id"
}

copy_sboms() {
  local target
  for target in "${targets[@]}"; do copy_sbom "${target}"; done
}

total_start=${EPOCHREALTIME}
phase packages packages
phase engine engine
phase base base
phase efs-utils-source efs_utils
phase efs-proxy efs_proxy
for target in "${targets[@]}"; do
  phase "build ${target}" build "${target}"
done
phase "sbom copy" copy_sboms
printf '%s\t%s\n' total "$(echo "${EPOCHREALTIME} - ${total_start}" | bc)" >> "${times_file}"

# The table: where the time went, and how big each image is.
sizes_file="${EFS_CSI_IMAGES_CACHE}/sizes.tsv"
: > "${sizes_file}"
for target in "${targets[@]}"; do
  printf '%s\t%s\n' "efs-csi-${target}:${tag}" \
    "$(docker_cli image inspect --format '{{.Size}}' "efs-csi-${target}:${tag}")" >> "${sizes_file}"
done
python3 "${repo}/scripts/images/report.py" "${times_file}" "${sizes_file}" \
  "${EFS_CSI_IMAGES_CACHE}/report.json" "${source_kind}" "${base_image}" \
  "${sbom_dir}" "${sbom_steps}"
