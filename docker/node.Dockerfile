# efs-csi-node: the driver wheel with the "node" extra, efs-utils (mount.efs and its
# watchdog), mount.nfs4, stunnel, and tini as PID 1 to reap the stunnel and mount helpers
# efs-utils leaves behind. Build from the repository root:
#   docker build -f docker/node.Dockerfile -t efs-csi-node .
# No step depends on the build architecture (efs-utils 1.x is Python; Debian packages and
# wheels resolve per platform), so buildx builds linux/amd64 and linux/arm64 alike.
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
RUN python -m venv /opt/efs-csi \
    && /opt/efs-csi/bin/pip install --no-cache-dir "$(ls /wheels/efs_csi-*.whl)[node]" \
    && /opt/efs-csi/bin/efs-csi-node --version

# efs-utils from a pinned release tag, laid out as its Debian package would be.
FROM ${PYTHON_IMAGE} AS efs-utils
ARG EFS_UTILS_VERSION=1.36.0
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN git clone --depth 1 --branch "v${EFS_UTILS_VERSION}" \
        https://github.com/aws/efs-utils.git /src/efs-utils
WORKDIR /src/efs-utils
# Both scripts run with the driver's interpreter, whose botocore efs-utils uses to find a
# mount target's IP when DNS cannot.
RUN mkdir -p /out/sbin /out/usr/bin /out/etc/amazon/efs-static-files \
    && sed '1s|.*|#!/opt/efs-csi/bin/python3|' src/mount_efs/__init__.py > /out/sbin/mount.efs \
    && sed '1s|.*|#!/opt/efs-csi/bin/python3|' src/watchdog/__init__.py \
        > /out/usr/bin/amazon-efs-mount-watchdog \
    && chmod 0755 /out/sbin/mount.efs /out/usr/bin/amazon-efs-mount-watchdog \
    && cp dist/efs-utils.crt dist/efs-utils.conf /out/etc/amazon/efs-static-files/

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="efs-csi-node" \
      org.opencontainers.image.description="CSI node plugin for Amazon EFS" \
      org.opencontainers.image.licenses="Apache-2.0"
# Debian packages follow the pinned bookworm base (security updates included), not exact pins.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        nfs-common stunnel4 tini openssl util-linux ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=install /opt/efs-csi /opt/efs-csi
COPY --from=efs-utils /out/ /
# efs-utils reads /etc/amazon/efs; the node keeps it on the host (--efs-utils-config-dir) so
# state survives restarts, and copies the static files in from efs-static-files.
RUN ln -s /var/amazon/efs /etc/amazon/efs \
    && mkdir -p /var/amazon/efs /var/run/efs /var/log/amazon/efs
ENV PATH="/opt/efs-csi/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# tini reaps the stunnel and mount helpers efs-utils leaves behind; the chart runs the same.
ENTRYPOINT ["/usr/bin/tini", "-g", "--", "efs-csi-node"]
