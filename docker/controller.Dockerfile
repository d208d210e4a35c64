# efs-csi-controller: the driver wheel with the "controller" extra on a slim Python runtime.
# Build from the repository root:
#   docker build -f docker/controller.Dockerfile -t efs-csi-controller .
# No step depends on the build architecture: pure-Python wheel, pip resolves binary wheels for
# the target platform, so `docker buildx --platform linux/amd64,linux/arm64` works as is.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY efs_csi ./efs_csi
COPY controller ./controller
COPY node ./node
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS install
COPY --from=wheel /wheels /wheels
# The extra's pins live in pyproject.toml; the wheel carries them.
RUN python -m venv /opt/efs-csi \
    && /opt/efs-csi/bin/pip install --no-cache-dir "$(ls /wheels/efs_csi-*.whl)[controller]" \
    && /opt/efs-csi/bin/efs-csi-controller --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="efs-csi-controller" \
      org.opencontainers.image.description="CSI controller for Amazon EFS access points" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=install /opt/efs-csi /opt/efs-csi
ENV PATH="/opt/efs-csi/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The controller only talks to the EFS API and a unix socket: no root needed.
USER 65532:65532
ENTRYPOINT ["efs-csi-controller"]
