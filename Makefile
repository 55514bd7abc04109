# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (mypy, then pytest).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,ray]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## decompile tracr's 15 lib programs (hardest first), a random program and a TransformerLens file
	$(BIN)/python -m tracr_decompiler.demo

test: typecheck  ## the type checker, then the whole test suite
	$(BIN)/python -m pytest -p no:cacheprovider --durations=20

typecheck: $(STAMP)  ## mypy on src/ (settings in pyproject.toml's [tool.mypy])
	$(BIN)/mypy

bench: $(STAMP)  ## generation/compile and training benchmarks
	$(BIN)/python benchmarks/generation_bench.py
	$(BIN)/python benchmarks/training_bench.py

# Regenerate the data and retrain the shipped model from scratch (hours on 2 CPU cores).
reproduce: $(STAMP)
	bash scripts/reproduce.sh

.PHONY: install demo test typecheck bench reproduce
