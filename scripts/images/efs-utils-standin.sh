#!/usr/bin/env bash
# Commit the efs-utils stand-in tree (tests/images/efs_utils_standin) to a bare git repository,
# tagged like an efs-utils release, for the image build to fetch as it fetches the real one.
# Author, committer and dates are fixed, so the same tree always gives the same commit id.
# Writes "<tag> <commit> <tree sha256>" to <repository>/PINS and prints the repository's path.
#
# Usage: scripts/images/efs-utils-standin.sh BARE_REPOSITORY_PATH
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bare="${1:?usage: $0 BARE_REPOSITORY_PATH}"
tree_dir="${repo}/tests/images/efs_utils_standin"
tag=v0.0.0-standin

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
cp -r "${tree_dir}/." "${work}/"
find "${work}" -name __pycache__ -prune -exec rm -rf {} +
# The scripts efs-utils installs are executable in its repository.
chmod 0755 "${work}/src/mount_efs/__init__.py" "${work}/src/watchdog/__init__.py"
export GIT_AUTHOR_NAME=efs-csi GIT_AUTHOR_EMAIL=efs-csi@localhost \
       GIT_COMMITTER_NAME=efs-csi GIT_COMMITTER_EMAIL=efs-csi@localhost \
       GIT_AUTHOR_DATE="2000-01-01T00:00:00Z" GIT_COMMITTER_DATE="2000-01-01T00:00:00Z"
git -C "${work}" init --quiet
git -C "${work}" add --all
git -C "${work}" -c commit.gpgsign=false commit --quiet -m "efs-utils stand-in"
commit="$(git -C "${work}" rev-parse HEAD)"
tree="$(git -C "${work}" archive --format=tar "${commit}" | sha256sum | cut -d' ' -f1)"

rm -rf "${bare}"
git clone --quiet --bare "${work}" "${bare}"
git -C "${bare}" tag "${tag}" "${commit}"
echo "${tag} ${commit} ${tree}" > "${bare}/PINS"
echo "${bare}"
