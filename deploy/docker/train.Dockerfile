# syntax=docker/dockerfile:1
# The opsline train image: runs `opsline <command>` (default: the whole path for house_price:
# prepare -> validate -> train -> evaluate -> register -> promote through the gate) against
# a tracking server, then exits. Build from the repository root:
#   make images                                   # both images, docker or CONTAINER=podman
#   docker build -f deploy/docker/train.Dockerfile -t opsline-train .
# Run:
#   docker run --rm opsline-train run house_price tracking.uri=http://mlflow:5000
#   docker run --rm opsline-train train house_price model=gbm tracking.uri=http://mlflow:5000
# Kubernetes: deploy/k8s/base/train-job.yaml.
# The same virtualenv as the serve image (same lock, same wheel), so a model trained here
# loads there; kept as a separate image because it runs differently (a batch job with no
# port, no health check) and can be scheduled on other nodes (GPUs, bigger memory).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: a self-contained virtualenv at /opt/venv ------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Exact pins first (a layer reused until requirements.lock changes); --no-deps is safe: the
# lock lists every transitive package.
COPY requirements.lock .
RUN pip install --no-deps -r requirements.lock
# The wheel force-includes configs/ (recipes, experiments, trainers, monitor policies) as
# opsline/configs; --no-build-isolation: hatchling is pinned in the lock.
COPY pyproject.toml README.md ./
COPY configs ./configs
COPY src ./src
RUN pip install --no-deps --no-build-isolation . \
    && opsline --help >/dev/null

# ---- runtime: slim, non-root ----------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# libgomp1: LightGBM's OpenMP runtime; the slim base lacks it. DL3008 (pin apt versions) is
# ignored on purpose: Debian drops a package's old version from the archive with each
# security update, so a pin would break the build; the base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 opsline \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin opsline \
    && mkdir -p /workspace \
    && chown 10001:10001 /workspace
COPY --from=builder /opt/venv /opt/venv
# There is no .git in the image, so runs record git commit "unknown"; the revision the image
# was built from is in its OCI label instead (make images passes it).
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="opsline-train" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
# OPSLINE_HOME: the job's scratch workspace (prepared data, checkpoints, metrics/*.prom);
# what must outlive the pod goes to the tracking server (tracking.uri=...).
# GIT_PYTHON_REFRESH=quiet: MLflow would warn on every run that git is missing.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OPSLINE_HOME=/workspace \
    GIT_PYTHON_REFRESH=quiet \
    MLFLOW_ENABLE_TELEMETRY=false
WORKDIR /workspace
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
VOLUME ["/workspace"]
# Exec form: opsline is PID 1 and gets SIGTERM directly (a Job's deadline or `docker stop`).
ENTRYPOINT ["opsline"]
CMD ["run", "house_price"]
