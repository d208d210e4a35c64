#!/bin/sh
# Builds /opt/efs-csi, the virtualenv of one binary, in two steps so that the image build caches
# the dependencies apart from the driver:
#   venv.sh dependencies BINARY [EXTRAS]   the exact pins of the binary's distribution (with
#                                          EXTRAS, comma-separated) and of the efs-csi-core extras
#                                          it asks for, read from the pyproject.toml files
#   venv.sh driver BINARY                  the core's and the binary's wheels (/wheels), nothing
#                                          else of the driver, then what the image does not need
# BINARY is controller or node: each image holds its own distribution and the core, never the
# other binary.
# "driver" checks that the environment is complete (pip check; the binary's composition root
# imports), removes pip and setuptools (nothing runs them at run time), compiles every module's
# bytecode (below) and cuts botocore's API
# models to the services the driver and efs-utils call: efs, sts (roles), ec2 (efs-utils: the
# zone of a mount target), logs (efs-utils: CloudWatch logs), and the SSO and sign-in services
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
    python3 -c '
import re, sys, tomllib
binary, extras = sys.argv[1], [extra for extra in sys.argv[2].split(",") if extra]
def project(path):
    with open(path, "rb") as file:
        return tomllib.load(file)["project"]
core, own = project("/src/pyproject.toml"), project(f"/src/{binary}/pyproject.toml")
wanted = own["dependencies"] + [r for extra in extras for r in own["optional-dependencies"][extra]]
pins = []
for requirement in wanted:
    local = re.fullmatch(r"efs-csi-core(?:\[([a-z,]+)\])?==\S+", requirement)
    if local is None:
        pins.append(requirement)
        continue
    pins += core["dependencies"]
    for extra in filter(None, (local.group(1) or "").split(",")):
        pins += core["optional-dependencies"][extra]
print("\n".join(sorted(set(pins))))
' "${binary}" "${extras}" > /src/requirements.txt
    python3 -m venv "${venv}"
    "${venv}/bin/pip" install --no-cache-dir --quiet --disable-pip-version-check \
      -r /src/requirements.txt
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
    site="$("${venv}/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    "${venv}/bin/python" -m compileall -q -f -j 0 --invalidation-mode unchecked-hash "${site}"
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
