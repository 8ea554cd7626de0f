# Two commands for a new user: `make run` and `make test`. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test setup system-deps lock lint clean images

run: setup
	$(BIN)/opsline run house_price --serve --host $(HOST) --port $(PORT)

test: setup system-deps
	$(BIN)/python -m pytest

setup: $(STAMP)

# Exact pins from requirements.lock (every transitive package listed, so --no-deps is safe
# and the install is the same on every machine); the project itself editable on top.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

# System packages the tests read: Chromium (the browser tests drive the system browser;
# Playwright never downloads one), Fashion-MNIST's IDX files, and Danish gettext catalogs
# (a real offline translation corpus), and Prometheus + promtool (the monitoring tests run
# the real server against deploy/prometheus/), and PostgreSQL 15 (the scale-out stack). Installed once, with apt.
APT_PACKAGES := chromium dataset-fashion-mnist iso-codes libglib2.0-data libgtk-3-common coreutils prometheus postgresql-15
system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages for the tests (apt): $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# Re-pin after changing dependencies in pyproject.toml.
lock:
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^opsline' > requirements.lock

lint:
	$(BIN)/ruff check src tests

# The serve and train images (deploy/docker/), for users with Docker or Podman:
#   make images    |    make images CONTAINER=podman TAG=0.1.0 REGISTRY=ghcr.io/acme/
# Not run by `make test`: the test machine has no container engine (the Dockerfiles are
# linted and checked statically in tests/test_deploy.py).
CONTAINER ?= docker
REGISTRY ?=
TAG ?= latest
GIT_COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# Podman builds OCI images by default, and the OCI format has no HEALTHCHECK (podman drops
# it with a warning); the docker format keeps it.
IMAGE_FORMAT := $(if $(findstring podman,$(notdir $(CONTAINER))),--format docker,)
images:
	$(CONTAINER) build $(IMAGE_FORMAT) -f deploy/docker/serve.Dockerfile --build-arg GIT_COMMIT=$(GIT_COMMIT) -t $(REGISTRY)opsline-serve:$(TAG) .
	$(CONTAINER) build $(IMAGE_FORMAT) -f deploy/docker/train.Dockerfile --build-arg GIT_COMMIT=$(GIT_COMMIT) -t $(REGISTRY)opsline-train:$(TAG) .

clean:
	rm -rf .opsline .pytest_cache
