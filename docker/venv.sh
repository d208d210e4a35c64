#!/bin/sh
# Builds /opt/efs-csi, the virtualenv of one binary, in two steps so that the image build caches
# the dependencies apart from the driver:
#   venv.sh dependencies EXTRA   the exact pins of the core and of the extra, from pyproject.toml
#   venv.sh driver EXTRA         the driver's wheel (/wheels), then what the image does not need
# "driver" removes pip and setuptools (nothing runs them at run time) and cuts botocore's API
# models to the services the driver and efs-utils call: efs, sts (roles), ec2 (efs-utils: the
# zone of a mount target), logs (efs-utils: CloudWatch logs), and the SSO and sign-in services
# botocore's credential providers call. tests/images creates a client for each in the image.
set -eu
step="$1"
extra="$2"
venv=/opt/efs-csi

case "${step}" in
  dependencies)
    if [ -s /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi
    python3 -c '
import sys, tomllib
project = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"][sys.argv[1]]))
' "${extra}" > /src/requirements.txt
    python3 -m venv "${venv}"
    "${venv}/bin/pip" install --no-cache-dir --quiet --disable-pip-version-check \
      -r /src/requirements.txt
    ;;
  driver)
    "${venv}/bin/pip" install --no-cache-dir --quiet --disable-pip-version-check --no-deps \
      --no-index /wheels/*.whl
    "${venv}/bin/python" -m pip uninstall --quiet --disable-pip-version-check -y pip setuptools
    data="$("${venv}/bin/python" -c 'import botocore, os; print(os.path.join(os.path.dirname(botocore.__file__), "data"))')"
    find "${data}" -mindepth 1 -maxdepth 1 -type d \
      ! -name efs ! -name sts ! -name ec2 ! -name logs ! -name sso ! -name sso-oidc \
      ! -name signin -exec rm -rf {} +
    "${venv}/bin/efs-csi-${extra}" --version
    ;;
  *)
    echo "usage: $0 dependencies|driver EXTRA" >&2
    exit 2
    ;;
esac
