#!/usr/bin/env bash
# The kind engine's runtime (engine.sh installs it with `real` set to Debian's runc): runc, but
# every OCI spec (create/run --bundle) and exec process (--process) first loses the capabilities
# missing from this process's bounding set. Root on our machines lacks CAP_SYS_RESOURCE, and
# Docker 20.10 asks for every capability the kernel knows under --privileged (every kind node),
# which runc refuses: "unable to apply caps: operation not permitted". Inside a node, containerd
# hands privileged pods only the capabilities it has, so nothing more is needed there.
set -euo pipefail
real="${REAL_RUNC:?}"  # replaced by engine.sh
args=("$@")
files=()
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --bundle|-b) files+=("${args[$((i + 1))]}/config.json") ;;
    --bundle=*) files+=("${args[$i]#--bundle=}/config.json") ;;
    --process|-p) files+=("${args[$((i + 1))]}") ;;
    --process=*) files+=("${args[$i]#--process=}") ;;
  esac
done
if [[ ${#files[@]} -gt 0 ]]; then
  bounding=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
  last=$(cat /proc/sys/kernel/cap_last_cap)
  missing=()
  for ((c = 0; c <= last; c++)); do
    (( (bounding >> c) & 1 )) || missing+=("$(capsh --decode="$(printf '%x' $((1 << c)))" | sed 's/.*=//' | tr '[:lower:]' '[:upper:]')")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    drop="$(IFS=,; echo "${missing[*]}")"
    for file in "${files[@]}"; do
      [[ -f "${file}" ]] || continue
      jq --arg drop "${drop}" '($drop | split(",")) as $missing
        | walk(if type == "object" and has("bounding")
               then map_values(if type == "array"
                               then map(select(. as $c | $missing | index($c) | not)) else . end)
               else . end)' "${file}" > "${file}.caps" && mv "${file}.caps" "${file}"
    done
  fi
fi
exec "${real}" "$@"
