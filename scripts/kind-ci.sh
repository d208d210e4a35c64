#!/usr/bin/env bash
# The kind workflow as CI runs it (tests/kind), on a machine without a registry or a Docker of
# its own: `make kind-up kind-e2e kind-down` exactly as users run them, with two differences,
# both because no registry is reachable:
#   - the node image is built locally (make kind-node-image) and given to kind-up as
#     KIND_NODE_IMAGE;
#   - our images are the ones scripts/images/build.sh builds (as `make test` does, with
#     NODE_EXTRAS=local and tag kind), moved from its engine into the kind engine, and kind-up
#     only loads them (EFS_CSI_KIND_IMAGES=loaded) instead of building them with `docker build`.
# kind, kubectl, helm and docker run in the kind engine's network namespace
# (scripts/kind/engine.sh run); the engine, the cluster and the namespace are gone at the end,
# and the kernel settings the kind nodes' kubelets change are put back after kind-up and at the
# end. KEEP=1 leaves the cluster and the engine up.
#
#   scripts/kind-ci.sh        where the time went is printed at the end and saved, with the
#                             e2e's checks, in .cache/kind/ci.json (times) and e2e.json
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/kind/paths.sh
source "${repo}/scripts/kind/paths.sh"
engine="${repo}/scripts/kind/engine.sh"
mkdir -p "${KIND_CACHE}" "${KIND_LOGS}"
results="${KIND_CACHE}/e2e.json"
times_json="${KIND_CACHE}/ci.json"
data_dir="${KIND_CACHE}/data"
rm -f "${results}" "${times_json}"
export EFS_CSI_KIND_DATA="${data_dir}" KIND_CLUSTER="${KIND_CLUSTER:-efs-csi}"

images_engine_started=false
times=()
step() {  # name, command...: runs it, records its wall time; its output goes to the log
  local name=$1 t0=${EPOCHREALTIME} rc=0; shift
  echo "== kind-ci: ${name}" >&2
  "$@" || rc=$?
  times+=("${name}=$(awk "BEGIN { printf \"%.3f\", ${EPOCHREALTIME} - ${t0} }")")
  if [[ ${rc} != 0 ]]; then echo "kind-ci: ${name} failed (exit ${rc})" >&2; return "${rc}"; fi
}

finish() {
  local rc=$?
  if [[ "${KEEP:-0}" != 1 ]]; then
    if "${engine}" status; then
      step kind-down "${engine}" run make -C "${repo}" --no-print-directory kind-down || rc=1
    fi
    step engine-stop "${engine}" stop || rc=1
    if [[ "${images_engine_started}" == true ]]; then "${repo}/scripts/images/dockerd.sh" stop; fi
  fi
  "${engine}" restore
  printf '%s\n' "${times[@]}" | python3 -c '
import json, sys
steps = [dict(name=k, seconds=round(float(v), 1)) for k, v in (line.strip().split("=", 1) for line in sys.stdin if line.strip())]
json.dump({"steps": steps, "exit": int(sys.argv[2])}, open(sys.argv[1], "w"), indent=2)
width = max([len(s["name"]) for s in steps] + [5])
print("kind-ci: where the time went")
for s in steps:
    print("  %-*s  %7.1fs" % (width, s["name"], s["seconds"]))
print("  %-*s  %7.1fs" % (width, "total", sum(s["seconds"] for s in steps)))' "${times_json}" "${rc}" >&2
  exit "${rc}"
}
trap finish EXIT

# Our images, as make test builds them, with the local backend's extras for kind/values.yaml.
"${repo}/scripts/images/dockerd.sh" status || images_engine_started=true
step images env NODE_EXTRAS=local IMAGE_TAG=kind \
  "${repo}/scripts/images/build.sh" --keep-daemon controller node
step engine "${engine}" start
step node-image env DOCKER_HOST="${KIND_DOCKER_HOST}" "${repo}/scripts/kind-node-image.sh" >/dev/null
node_image="$(cat "${KIND_CACHE}/node-image")"
step move-images sh -c "'${DOCKER_CLI}' -H '${IMAGES_DOCKER_HOST}' save efs-csi-controller:kind efs-csi-node:kind \
  | '${DOCKER_CLI}' -H '${KIND_DOCKER_HOST}' load -q"
step kind-up "${engine}" run env KIND_NODE_IMAGE="${node_image}" EFS_CSI_KIND_IMAGES=loaded \
  make -C "${repo}" --no-print-directory kind-up
"${engine}" restore   # the kind nodes' kubelets rewrote three global kernel settings
step kind-e2e "${engine}" run env EFS_CSI_KIND_RESULTS="${results}" \
  make -C "${repo}" --no-print-directory kind-e2e
