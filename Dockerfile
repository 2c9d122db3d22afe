# syntax=docker/dockerfile:1
# The ingress controller image: `python -m tyk_controller`, the entry point the tests start.
#
# Slim Debian Python base, by tag (Python minor and Debian release). `pulumi up` with `images.pinDigests` passes
# the digest it pinned for this tag (`--build-arg BASE_IMAGE=python:3.11-slim-bookworm@sha256:...`), so a
# stack's rebuilds keep the same base until the tag or `images.pinGeneration` changes.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# No .pyc writes at run time (the root filesystem is read-only; the code is compiled below), unbuffered logs.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The hashed lock (requirements-controller.txt, generated from requirements-controller.in): every wheel checked.
COPY requirements-controller.txt ./
RUN pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements-controller.txt

COPY tyk_gateway/ ./tyk_gateway/
COPY tyk_controller/ ./tyk_controller/
RUN python -m compileall -q tyk_gateway tyk_controller

# Numeric, so the kubelet can enforce runAsNonRoot; matches the pod's runAsUser.
USER 65532:65532

ENTRYPOINT ["python", "-m", "tyk_controller"]
