# Two commands for a new user: `make run` and `make test`. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test check lint fuzz docs retrain release-check setup system-deps lock clean images

run: setup
	$(BIN)/opsline run house_price --serve --host $(HOST) --port $(PORT)

# PYTEST_ARGS selects a part, e.g. `make test PYTEST_ARGS='-m "quality or browser"'` (CI's matrix).
PYTEST_ARGS ?=
test: setup system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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

# Lint and type-check: the same tools and versions as the pre-commit hooks (.pre-commit-config.yaml)
# and CI (.ci/run, .github/workflows/ci.yml). `ruff format --check` fails on unformatted code;
# `ruff format src tests benchmarks` formats it.
LINT_PATHS := src tests benchmarks docs/hooks
lint: setup
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

# The edit loop: lint, then every test except the slow quality thresholds, the browser and
# the fuzzing budget of `make test` (about 3 minutes here). CI still runs all of them.
check: lint
	$(BIN)/python -m pytest -q -m "not quality and not browser and not slow"

# Property-based fuzzing of every recipe's OpenAPI with a much larger budget than `make test`.
FUZZ_EXAMPLES ?= 200  # cases per operation and phase; set, it also explores new inputs each run
fuzz: setup
	OPSLINE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/serving/test_fuzz.py

# The documentation site (mkdocs.yml, docs/) into site/; `.venv/bin/mkdocs serve` previews it.
docs: setup
	$(BIN)/mkdocs build --strict --site-dir site

# What the data workflow runs when data or dvc.lock change: the DVC pipeline (prepare →
# validate → train → evaluate; stages whose inputs did not change are skipped) and then the
# promotion gate on the version it registered. Needs a project set up with `opsline dvc init`.
RECIPE ?= house_price
retrain: setup
	$(BIN)/dvc repro
	$(BIN)/opsline promote $(RECIPE) --latest

# What the registry workflow runs after a promotion: serve RECIPE's production model, wait
# until it is ready (loaded and smoke-tested), load-test it and attach the report to the
# version (deploy/ci/release-check.sh; LOADTEST_S, SLO_P95_MS, REPORT_DIR tune it).
release-check: setup
	RECIPE=$(RECIPE) HOST=$(HOST) PORT=$(PORT) BIN=$(BIN) deploy/ci/release-check.sh

# The serve and train images (deploy/docker/), for users with Docker or Podman:
#   make images    |    make images CONTAINER=podman TAG=0.1.0 REGISTRY=ghcr.io/acme/
# Not run by `make test`: the test machine has no container engine (the Dockerfiles are
# linted and checked statically in tests/deploy/test_docker.py).
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
