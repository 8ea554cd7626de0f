# syntax=docker/dockerfile:1
# The opsline serve image: `opsline serve` on port 8000, configured by OPSLINE_* variables.
# Build from the repository root (the context must hold requirements.lock, src/, configs/):
#   make images                                   # both images, docker or CONTAINER=podman
#   docker build -f deploy/docker/serve.Dockerfile -t opsline-serve .
# Run (a model must be promoted in the tracking server the container reads):
#   docker run -p 8000:8000 -e OPSLINE_TRACKING_URI=http://mlflow:5000 opsline-serve
# Kubernetes: deploy/k8s/ (probes, Prometheus annotations, ConfigMap of OPSLINE_* settings).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: a self-contained virtualenv at /opt/venv ------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Exact pins first, on their own: this (large) layer is reused until requirements.lock
# changes. --no-deps is safe because the lock lists every transitive package, so the image
# gets exactly the versions the test suite ran against.
COPY requirements.lock .
RUN pip install --no-deps -r requirements.lock
# The project itself: a real (non-editable) wheel install. The wheel force-includes
# configs/ as opsline/configs, so the runtime stage needs nothing but the venv.
# --no-build-isolation: hatchling is pinned in the lock and already installed above.
COPY pyproject.toml README.md ./
COPY configs ./configs
COPY src ./src
RUN pip install --no-deps --no-build-isolation . \
    && opsline --help >/dev/null

# ---- runtime: slim, no compilers, no sources, non-root --------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# libgomp1: LightGBM's OpenMP runtime (the house_price GBM); the slim base lacks it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 opsline \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin opsline \
    && mkdir -p /workspace \
    && chown 10001:10001 /workspace
# DL3008 (pin apt versions) is ignored on purpose: Debian replaces a package's old version in
# the archive with each security update, so a pinned libgomp1 would break the build within
# weeks; the base image tag already fixes the Debian release.
COPY --from=builder /opt/venv /opt/venv
# The revision the image was built from (make images passes it): /model reports the run's
# lineage, this label says which code serves it.
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="opsline-serve" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
# OPSLINE_HOME: the workspace (downloaded models, metrics/*.prom, jobs.db, and the SQLite
# prediction log unless OPSLINE_PREDICTION_LOG_URI points at PostgreSQL). OPSLINE_HOST must
# be 0.0.0.0 in a container (the CLI default 127.0.0.1 is unreachable from outside).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OPSLINE_HOME=/workspace \
    OPSLINE_RECIPE=house_price \
    OPSLINE_HOST=0.0.0.0 \
    OPSLINE_PORT=8000 \
    GRADIO_ANALYTICS_ENABLED=False \
    MLFLOW_ENABLE_TELEMETRY=false
WORKDIR /workspace
# A numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
VOLUME ["/workspace"]
EXPOSE 8000
# /ready is 200 only once a model is loaded (503 before): the container is "healthy" when it
# can answer /predict, not merely when the process is up (that is /health, the k8s liveness
# probe). Python's urllib, so the image needs no curl; urlopen raises on 503 -> exit 1.
# start-period: imports and the first model download take a while on a cold start.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('OPSLINE_PORT', '8000'), timeout=4)"]
# `opsline serve` (not bare uvicorn): it resolves the served model name and the tracking URI
# from the recipe's config the same way the CLI does everywhere else. The recipe, host and
# port come from OPSLINE_*; `exec` makes opsline PID 1 so SIGTERM reaches it (it answers
# every accepted request, then exits). Arguments after the image name are passed on:
#   docker run opsline-serve data=grapevine          (OPSLINE_RECIPE=image_classification)
ENTRYPOINT ["sh", "-c", "exec opsline serve \"$OPSLINE_RECIPE\" --host \"$OPSLINE_HOST\" --port \"$OPSLINE_PORT\" \"$@\"", "opsline-serve"]
CMD []
