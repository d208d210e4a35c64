#!/bin/sh
# Builds /opt/efs-csi, the virtualenv of one binary, in two steps so that the image build caches
# the dependencies apart from the driver:
#   venv.sh dependencies BINARY [EXTRAS]   the binary's locked packages: the lock of BINARY, or
#                                          of BINARY-EXTRAS (docker/requirements/, copied to
#                                          /src/requirements), the whole closure, installed with
#                                          --require-hashes (pip refuses a package missing from
#                                          the lock, or whose file differs) and wheels only
#                                          (nothing is built, so no unpinned build backend runs)
#   venv.sh driver BINARY                  the core's and the binary's wheels (/wheels), nothing
#                                          else of the driver, then what the image does not need
# BINARY is controller or node: each image holds its own distribution and the core, never the
# other binary. scripts/images/lock.py (make lock) writes the locks from the pyproject files.
# "driver" checks that the environment is complete (pip check; the binary's composition root
# imports), removes pip and setuptools (nothing runs them at run time), compiles every module's
# bytecode (below, at the level the binary's script runs: -OO) and cuts botocore's API models
# to the services the driver and efs-utils call: efs, sts (roles), ec2 (efs-utils: the zone of
# a mount target), logs (efs-utils: CloudWatch logs), and the SSO and sign-in services
# botocore's credential providers call. tests/images creates a client for each in the image.
set -eu
step="$1"
binary="$2"
extras="${3:-}"
venv=/opt/efs-csi

case "${binary}" in
  controller|node) ;;
  *) echo "usage: $0 dependencies|driver controller|node [EXTRAS]" >&2; exit 2 ;;
esac

case "${step}" in
  dependencies)
    if [ -s /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi
    lock="/src/requirements/${binary}${extras:+-$(echo "${extras}" | tr ',' '-')}.txt"
    if [ ! -f "${lock}" ]; then
      echo "no lock for ${binary} with extras '${extras}' (${lock}); the locks:" \
        "$(ls /src/requirements)" >&2
      exit 2
    fi
    python3 -m venv "${venv}"
    "${venv}/bin/pip" install --no-cache-dir --quiet --disable-pip-version-check \
      --require-hashes --only-binary :all: -r "${lock}"
    ;;
  driver)
    "${venv}/bin/pip" install --no-cache-dir --quiet --disable-pip-version-check --no-deps \
      --no-index /wheels/efs_csi_core-*.whl "/wheels/efs_csi_${binary}-"*.whl
    "${venv}/bin/pip" check --disable-pip-version-check
    "${venv}/bin/python" -c "import efs_csi_${binary}.app"
    "${venv}/bin/python" -m pip uninstall --quiet --disable-pip-version-check -y pip setuptools
    # Bytecode for every module of the venv, so the first start is as fast as the next (the
    # images run with PYTHONDONTWRITEBYTECODE and as a user who could not write it anyway;
    # without it a start compiles ~1,500 modules: seconds, not tenths: bench/startup.py).
    # unchecked-hash: valid whatever the sources' mtimes become in the layers (an image's files
    # never change); tests/images checks every module has it.
    # Each binary runs optimized (its console script's `python -OO`: no docstrings, no asserts;
    # idle memory 2.3 MiB less in the controller, 1.5 in the node: docs/performance.md), so
    # the venv's bytecode is of that level only: nothing in the images runs its modules at
    # another (the node's start-up helper runs at the node's level).
    script="${venv}/bin/efs-csi-${binary}"
    sed -i '1s|^#!\(/[^ ]*/python[0-9.]*\)$|#!\1 -OO|' "${script}"
    head -n 1 "${script}" | grep -q ' -OO$' || {
      echo "venv.sh: ${script} does not run -OO" >&2; exit 1; }
    site="$("${venv}/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    # pip wrote level-0 bytecode at install: nothing would read it.
    find "${site}" -name '*.pyc' ! -name '*.opt-*.pyc' -delete
    "${venv}/bin/python" -m compileall -q -f -j 0 -o 2 --invalidation-mode unchecked-hash \
      "${site}"
    data="$("${venv}/bin/python" -c 'import botocore, os; print(os.path.join(os.path.dirname(botocore.__file__), "data"))')"
    find "${data}" -mindepth 1 -maxdepth 1 -type d \
      ! -name efs ! -name sts ! -name ec2 ! -name logs ! -name sso ! -name sso-oidc \
      ! -name signin -exec rm -rf {} +
    "${venv}/bin/efs-csi-${binary}" --version
    ;;
  *)
    echo "usage: $0 dependencies|driver controller|node [EXTRAS]" >&2
    exit 2
    ;;
esac
