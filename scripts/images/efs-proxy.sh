#!/usr/bin/env bash
# efs-proxy, built once per efs-utils commit and Rust toolchain and kept in an ignored folder, so
# that only a cold run pays for it (about 22 minutes and 1.6 GiB on 2 cores: AWS-LC is built
# twice, for s2n-tls' FIPS module and for the AWS SDK's rustls, plus the S3/CloudWatch SDKs).
#
#   scripts/images/efs-proxy.sh EFS_UTILS_GIT_DIR COMMIT      prints the binary's path
#   scripts/images/efs-proxy.sh --check COMMIT                 exit 0 when cached or buildable
#
# The cache key is the commit and a digest of `rustc -vV` (version, commit, host triple), so a
# new toolchain or efs-utils release builds afresh and nothing stale is reused:
#   $EFS_PROXY_CACHE/<commit>-<toolchain>/efs-proxy       the stripped binary
#   $EFS_PROXY_CACHE/<commit>-<toolchain>/build.json      how long the cold build took, with what
# Crates downloaded once stay in $EFS_PROXY_CACHE/cargo-home; the 1.7 GiB target/ directory is
# removed after the build. The build is the Dockerfile's (`cargo build --release --locked` in
# src/proxy), run on the host's toolchain (rustup on this project's machines); the image build
# then takes the binary through EFS_PROXY_FROM=prebuilt (scripts/images/build.sh). Users who
# build the Dockerfile themselves compile it from source in the image.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
git_dir="${1:?usage: $0 EFS_UTILS_GIT_DIR COMMIT}"
commit="${2:?usage: $0 EFS_UTILS_GIT_DIR COMMIT}"
cache="${EFS_PROXY_CACHE:-${repo}/.cache/efs-proxy}"
jobs="${EFS_PROXY_JOBS:-$(nproc)}"

missing=""
for tool in cargo rustc go cmake perl cc strip; do
  command -v "${tool}" >/dev/null || missing="${missing} ${tool}"
done
if [[ -n "${missing}" ]]; then
  echo "efs-proxy: not found:${missing} (the build needs Rust, Go, cmake, perl and a C" \
       "compiler: rustup's toolchain and Debian's golang-go cmake perl gcc binutils)" >&2
  exit 3
fi

toolchain="$(rustc -vV)"
key="${commit}-$(printf '%s' "${toolchain}" | sha256sum | cut -c1-16)"
out="${cache}/${key}"
if [[ "${git_dir}" == --check ]]; then exit 0; fi
mkdir -p "${cache}"
exec 9>"${cache}/.lock"
flock 9  # one build at a time; a second caller waits and then finds the binary

if [[ -x "${out}/efs-proxy" ]]; then
  echo "efs-proxy: cached (${key})" >&2
  echo "${out}/efs-proxy"
  exit 0
fi

work="${cache}/work-${key}"
rm -rf "${work}"
mkdir -p "${work}"
trap 'rm -rf "${work}"' EXIT
git -C "${git_dir}" archive --format=tar "${commit}" src/proxy | tar -x -C "${work}"

echo "efs-proxy: cold build for ${key} (about 22 min on 2 cores; log: ${work}.log)" >&2
start=${EPOCHREALTIME}
if ! (cd "${work}/src/proxy" \
      && CARGO_HOME="${cache}/cargo-home" CARGO_TARGET_DIR="${work}/target" \
         nice -n 10 cargo build --release --locked -j "${jobs}") > "${work}.log" 2>&1; then
  echo "efs-proxy: build failed; the end of ${work}.log:" >&2
  tail -40 "${work}.log" >&2
  exit 1
fi
seconds="$(echo "${EPOCHREALTIME} - ${start}" | bc)"
mkdir -p "${out}"
install -m 0755 "${work}/target/release/efs-proxy" "${out}/efs-proxy.tmp"
strip "${out}/efs-proxy.tmp"
python3 - "${out}/build.json" "${seconds}" "${commit}" "${jobs}" "${toolchain}" <<'PY'
import json, sys
path, seconds, commit, jobs, toolchain = sys.argv[1:]
json.dump({"cold_build_s": round(float(seconds), 1), "efs_utils_commit": commit,
           "jobs": int(jobs), "rustc": toolchain.splitlines()}, open(path, "w"), indent=2)
PY
mv "${out}/efs-proxy.tmp" "${out}/efs-proxy"
mv "${work}.log" "${out}/build.log"
echo "efs-proxy: built in ${seconds} s" >&2
echo "${out}/efs-proxy"
