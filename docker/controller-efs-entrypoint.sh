#!/bin/sh
# Entry point of the controller-efs image (controller.deleteAccessPointRootDir with the efs
# backend): the controller mounts file system roots through efs-utils, so efs-utils' watchdog
# must run beside it, as on the node, to stop each mount's tunnel after the unmount and renew
# certificates. There is no init system in a container for efs-utils to ask: this script keeps
# the watchdog running (restarted 5 s after any exit) and then becomes the controller.
# tini, PID 1 (the image's ENTRYPOINT, `-g`), reaps the tunnels efs-utils detaches and passes
# SIGTERM to the whole group, so the watchdog stops with the controller.
set -eu
(
  while :; do
    amazon-efs-mount-watchdog || echo "efs-csi-controller-efs: watchdog exited ($?)" >&2
    sleep 5
  done
) &
exec efs-csi-controller "$@"
