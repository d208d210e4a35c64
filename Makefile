# The two commands of the README are the contract: `make demo` and `make test`.
# Both bootstrap a virtualenv (.venv) and the Go conformance tools (.tools/bin) from scratch.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
TOOLS := $(CURDIR)/.tools/bin
STAMP := $(VENV)/.installed
CSI_SANITY_VERSION := v5.4.0
HELM_VERSION := v3.21.4
PYTEST_ARGS ?=

export CSI_SANITY := $(TOOLS)/csi-sanity
export HELM := $(TOOLS)/helm

.PHONY: all test test-fast demo venv tools cluster-tools fuse prometheus datapath-packages lint \
	typecheck pytest proto proto-check clean

all: test

# The three distributions, editable, with every extra the tests use, and the development groups
# of pyproject.toml ([dependency-groups]: pip 25.1 or later installs them). The virtualenv is made
# afresh whenever a pyproject.toml changes, so nothing stale survives a change of packaging.
WORKSPACE := -e '.[aws,kube]' -e ./controller -e './node[local]'

$(STAMP): pyproject.toml controller/pyproject.toml node/pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade 'pip>=25.1'
	$(BIN)/pip install --quiet $(WORKSPACE) --group dev
	touch $@

venv: $(STAMP)

# Go tools of the CSI ecosystem. Without Go they are not installed: the tests that need them
# skip on a laptop and fail under CI.
tools: $(TOOLS)/csi-sanity $(TOOLS)/helm cluster-tools

# The real Kubernetes the cluster tests run (etcd, kube-apiserver, kube-controller-manager,
# kubelet, kubectl, csi-provisioner and two stand-ins), pinned by tests/cluster/go/*/go.sum.
# The first build takes minutes (printed); later ones only check the pins.
cluster-tools:
	@OUT=$(TOOLS) scripts/build-cluster-tools.sh

$(TOOLS)/csi-sanity:
	@if command -v go >/dev/null 2>&1; then \
	  echo "installing csi-sanity $(CSI_SANITY_VERSION)"; \
	  GOBIN=$(TOOLS) go install github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$(CSI_SANITY_VERSION); \
	else echo "Go not found: csi-sanity not installed"; fi

$(TOOLS)/helm:
	@if command -v go >/dev/null 2>&1; then \
	  echo "installing helm $(HELM_VERSION)"; \
	  GOBIN=$(TOOLS) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); \
	else echo "Go not found: helm not installed"; fi

# libfuse 3 for the slow file system of tests and benchmarks (testbed/slowfs/): Debian's fuse3,
# installed when missing and we are root; otherwise the tests that need it skip on a laptop
# (fail under CI).
fuse:
	@if ! ldconfig -p | grep -q 'libfuse3\.so\.3'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing fuse3 (libfuse 3) from Debian"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null; \
	  else echo "libfuse 3 missing and not installable here: FUSE tests skip"; fi; \
	fi

# Debian's Prometheus and promtool for tests/alerts (the chart's alerts checked by promtool and
# by a real Prometheus the tests start on loopback), installed when missing and we are root;
# otherwise those tests skip on a laptop (fail under CI). The package's own service is not
# wanted: where systemd started it, it is stopped and disabled again.
prometheus:
	@if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing prometheus (Prometheus and promtool) from Debian"; \
	    apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
	      prometheus >/dev/null; \
	    if [ -d /run/systemd/system ]; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi; \
	  else echo "prometheus/promtool missing and not installable here: tests/alerts skip"; fi; \
	fi

proto: $(STAMP)
	$(BIN)/python protos/generate.py

proto-check: $(STAMP)
	$(BIN)/python protos/generate.py --check

lint: $(STAMP) proto-check
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# bench/ holds scripts, not a package: mypy checks them on their own (a rename broke one).
typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy bench

# The data path's Debian packages (nfs-ganesha, stunnel4, libnfs-utils...: testbed/datapath),
# installed when missing and we are root; otherwise its tests skip on a laptop (fail under CI).
datapath-packages: $(STAMP)
	@$(BIN)/python -m testbed.datapath.packages

pytest: $(STAMP) tools fuse prometheus datapath-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything CI runs: lint, types, tests (unit, rpc, integration, conformance, chart, images).
test: lint typecheck pytest

# The fast tier alone (tests/conftest.py): pure logic and in-memory RPC, no root, no subprocess.
# It prints how many tests it ran and its wall time (interpreter start included). It runs on
# every core (pytest-xdist, tests dealt out one by one: a file per worker left one worker with
# the few files that wait, 13-17 s against 12-13 s), and it is rerun all day, so its
# bytecode (pytest's rewritten modules too) is cached in .cache/pycache even where
# PYTHONDONTWRITEBYTECODE is set: a warm run compiles nothing, and nothing is written beside the
# sources. FAST_WORKERS=0 runs it in this one process.
FAST_WORKERS ?= auto
test-fast: $(STAMP)
	@started=$$(date +%s%N); \
	env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$(CURDIR)/.cache/pycache \
	  $(BIN)/python -m pytest -m "not slow" -n $(FAST_WORKERS) --dist load $(PYTEST_ARGS); \
	status=$$?; \
	ms=$$(( ($$(date +%s%N) - started) / 1000000 )); \
	printf 'make test-fast: %d.%d s wall\n' $$((ms / 1000)) $$((ms % 1000 / 100)); exit $$status

demo: $(STAMP)
	$(BIN)/python demo/demo.py

# Plain manifests for kubectl apply -k, rendered from the chart (tests/chart checks drift).
manifests: tools
	scripts/generate-manifests.sh

# The three images of docker/Dockerfile, built with BuildKit from Debian's docker.io (started and
# stopped by the script; no Docker engine needed): see docs/images.md. `make test` builds them
# too (tests/images), reusing the cache under .cache/images.
images:
	scripts/images/build.sh

images-clean:
	scripts/images/dockerd.sh stop
	rm -rf .cache/images .tools/docker

# The images' Python locks (docker/requirements/: the whole closure, hashed) from the pyproject
# files; run after changing a dependency (tests/images/test_lock.py fails until then).
lock:
	$(PYTHON) scripts/images/lock.py

.PHONY: images images-clean lock

# Local kind workflow (needs docker, kind, kubectl, helm): see docs/kind.md.
kind-up: $(STAMP)
	scripts/kind-up.sh

kind-e2e: $(STAMP)
	scripts/kind-e2e.sh

kind-down:
	scripts/kind-down.sh

# A kind node image built here, for machines that reach no registry (CI); kind-up takes it as
# KIND_NODE_IMAGE. Needs root, Go and Debian: see docs/kind.md.
kind-node-image: tools
	scripts/kind-node-image.sh

# kind-up, kind-e2e and kind-down as CI runs them, offline (tests/kind runs this): the node
# image built here, our images from scripts/images, an engine in a network namespace of its own.
kind-ci: $(STAMP) tools
	scripts/kind-ci.sh

kind-clean:
	scripts/kind/engine.sh stop
	rm -rf .cache/kind .tools/kind

.PHONY: manifests kind-up kind-e2e kind-down kind-node-image kind-ci kind-clean

clean: images-clean
	rm -rf $(VENV) .tools .mypy_cache .pytest_cache .ruff_cache
