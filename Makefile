# One command sets everything up from PyPI by name; one runs the tests (.ci/run calls it).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Build the hello example and run it: the main job, end to end.
demo: setup
	$(BIN)/boxer build -t hello -f examples/hello-python/Dockerfile examples/hello-python -o hello.wasm
	$(BIN)/boxer run hello.wasm

test: setup
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) hello.wasm .pytest_cache
