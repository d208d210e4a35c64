#!/bin/sh
# The last build step of every image (docker/Dockerfile): its SBOM, made by docker/sbom.py (beside
# this script) run by the image's own interpreter over what the image holds, saved at
# /usr/share/efs-csi/sbom.cdx.json.
#   sbom.sh IMAGE [EFS_UTILS]
# EFS_UTILS, for the images that carry efs-utils: the Dockerfile's efs-utils-sbom stage, with
# the pins the build verified (pins: the tag, the commit and the tree's sha256, one a line) and
# efs-proxy's sources (proxy/, whose Cargo.lock names its crates).
set -eu
image="$1"
here="$(dirname "$0")"
if [ "$#" -ge 2 ]; then
  { read -r tag; read -r commit; read -r tree; } < "$2/pins"
  set -- --efs-utils-tag "${tag}" --efs-utils-commit "${commit}" \
    --efs-utils-tree-sha256 "${tree}" --efs-proxy-source "$2/proxy"
else
  set --
fi
mkdir -p /usr/share/efs-csi
/opt/efs-csi/bin/python3 -I "${here}/sbom.py" --image "${image}" "$@" \
  > /usr/share/efs-csi/sbom.cdx.json
