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
# - efs-utils: EFS_UTILS_SOURCE=standin (default: the stand-in tree of tests/images, served by
#   git daemon on 127.0.0.1), =upstream (the repository and pins written in the Dockerfile), or
#   =/path/to/a/git/repository of efs-utils (served on 127.0.0.1 and checked against the
#   Dockerfile's pinned tag, commit and checksum).
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
source_kind="${EFS_UTILS_SOURCE:-standin}"
build_ca="${BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}"
base_image="${BASE_IMAGE:-}"

mkdir -p "${EFS_CSI_IMAGES_CACHE}"
times_file="${EFS_CSI_IMAGES_CACHE}/times.tsv"
: > "${times_file}"
started_daemon=false
git_daemon_pid=""

cleanup() {
  if [[ -n "${git_daemon_pid}" ]]; then kill "${git_daemon_pid}" 2>/dev/null || true; fi
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
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
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

efs_utils_args=()
efs_utils() {
  case "${source_kind}" in
    upstream) return 0 ;;
    standin)
      local standin_git
      standin_git="$("${repo}/scripts/images/efs-utils-standin.sh" \
                     "${EFS_CSI_IMAGES_CACHE}/efs-utils-standin.git")"
      # The stand-in's tag, commit and tree checksum, as the script computed them.
      local tag_name commit tree
      read -r tag_name commit tree < "${standin_git}/PINS"
      serve_git "${standin_git}"
      efs_utils_args=(--build-arg "EFS_UTILS_REPOSITORY=${efs_utils_url}"
                      --build-arg "EFS_UTILS_TAG=${tag_name}"
                      --build-arg "EFS_UTILS_COMMIT=${commit}"
                      --build-arg "EFS_UTILS_TREE_SHA256=${tree}")
      ;;
    /*)
      # A local clone of efs-utils: only the transport changes; the Dockerfile's pins apply.
      serve_git "$(cd "${source_kind}" && git rev-parse --absolute-git-dir)"
      efs_utils_args=(--build-arg "EFS_UTILS_REPOSITORY=${efs_utils_url}")
      ;;
    *) echo "EFS_UTILS_SOURCE must be standin, upstream or an absolute path" >&2; return 2 ;;
  esac
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
              "${efs_utils_args[@]}")
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
