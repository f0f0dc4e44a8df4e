# modeldeploy developer entry points. Names are a stable interface (see README).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: help install system-deps binaries test test-unit chaos lint format bench demo demo-local clean images e2e-kind

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## .venv with every component and the dev tools

$(VENV)/.installed: predictor/pyproject.toml operator/pyproject.toml devcluster/pyproject.toml requirements/dev.txt
	@echo "==> creating $(VENV) and installing the components (editable) and dev tools"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade uv
	$(VENV)/bin/uv pip install --python $(PY) \
		-e './predictor[parquet,s3,router,xgboost,lightgbm]' -e ./operator -e ./devcluster -r requirements/dev.txt
	touch $@

system-deps: ## Debian packages the local cluster and benchmarks need (Prometheus, ...)
	bash hack/install-system-deps.sh

binaries: ## build the pinned etcd / kube-* / prometheus / helm binaries, fetch the Gateway API CRDs (cached)
	bash hack/build-binaries.sh
	bash hack/fetch-gateway-api-crds.sh

test: install ## the whole suite (what .ci/run calls); builds the cluster binaries when Go exists
	@if command -v go >/dev/null; then bash hack/build-binaries.sh >/dev/null; \
	bash hack/fetch-gateway-api-crds.sh >/dev/null; \
	else echo "!!! no Go toolchain: the local-cluster tests will be SKIPPED (a failure under CI=true)" >&2; fi
	@# pytest exit code 5 (nothing collected) must never pass for a green run.
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-unit: install ## only the tests that need no cluster
	$(PY) -m pytest -m 'not cluster' $(PYTEST_ARGS)

chaos: install ## the chaos suite with its long matrix and 30-minute soak; figures in out/chaos-figures.jsonl
	bash hack/build-binaries.sh >/dev/null
	mkdir -p out
	MODELDEPLOY_CHAOS_LONG=1 MODELDEPLOY_CHAOS_FIGURES=out/chaos-figures.jsonl \
	$(PY) -m pytest -m chaos -o timeout=3600 tests/chaos $(PYTEST_ARGS)

lint: install ## ruff lint + format check, mypy over the packages, import contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy operator/src/modeldeploy_operator predictor/src/modeldeploy_predictor \
		predictor/src/modeldeploy_router devcluster/src/modeldeploy_devcluster
	$(VENV)/bin/lint-imports

format: install ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install ## the benchmarks, printing ratios
	$(PY) -m benchmarks

demo: install ## the main job: the rollout demo on the local cluster (DEMO_CLUSTER=kind|current, DEMO_KEEP=1)
	@if [ "$$DEMO_CLUSTER" = kind ]; then bash hack/e2e-kind.sh demo; else $(MAKE) --no-print-directory demo-local; fi

demo-local:
	@echo "==> cluster binaries (etcd, kube-*, prometheus, helm): built once into the cache"
	@command -v go >/dev/null || [ -x "$$(bash hack/build-binaries.sh dir)/helm" ] || \
	{ echo "!!! the first make demo needs Go to build the cluster binaries (https://go.dev/dl/)" >&2; exit 1; }
	bash hack/build-binaries.sh
	$(PY) -m demo

images: ## build the operator and predictor images with podman (local debootstrap base)
	bash hack/images.sh

e2e-kind: install ## kind e2e on podman or Docker: node image, images, cluster, chart, the rollout story
	bash hack/e2e-kind.sh

clean: ## remove the virtualenv, caches and demo output (out/) inside the repo
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis out
