#!/usr/bin/env bash
# The life of a dockerd this project started, for the two scripts that start one each (sourced):
# scripts/images/dockerd.sh (the build engine) and scripts/kind/engine.sh (kind's engine).
#
# wait_for_dockerd PIDFILE LOG CHECK...: wait until the dockerd just started (the one writing
#   PIDFILE) answers CHECK (a command: the docker client's `version`), for up to a minute; give
#   up early once that dockerd has gone (after its first five seconds). On giving up, print
#   LOG's tail and return 1.
# stop_dockerd PIDFILE SECONDS: stop the dockerd whose pid PIDFILE holds (by that pid): SIGTERM,
#   then SIGKILL when it is still there after SECONDS; remove PIDFILE.
set -euo pipefail

wait_for_dockerd() {
  local pidfile="$1" log="$2" attempt
  shift 2
  for attempt in $(seq 1 120); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    if (( attempt > 10 )) && ! pgrep -f -- "--pidfile ${pidfile}" >/dev/null; then
      break
    fi
    sleep 0.5
  done
  echo "dockerd did not start in ${attempt} tries; its log (${log}):" >&2
  tail -20 "${log}" >&2
  return 1
}

stop_dockerd() {
  local pidfile="$1" seconds="$2" pid attempt
  [[ -f "${pidfile}" ]] || return 0
  pid="$(cat "${pidfile}")"
  if kill -0 "${pid}" 2>/dev/null; then
    kill -TERM "${pid}"
    for attempt in $(seq 1 $(( seconds * 2 ))); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "${pid}" 2>/dev/null; then
      echo "dockerd ${pid} ignored SIGTERM for ${seconds}s; killing it" >&2
      kill -KILL "${pid}"
    fi
    echo "dockerd ${pid} stopped (after ${attempt} checks)" >&2
  fi
  rm -f "${pidfile}"
}
