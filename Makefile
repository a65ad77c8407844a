# chainkit: two commands set everything up on a fresh machine (Python >= 3.11 and make).
#   make demo   creates .venv, installs chainkit, runs `chainkit demo` on the embedded local model
#   make test   the same set-up, then lint, type checks and the whole test suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "chainkit needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,ray]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/chainkit demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

# Each benchmark prints its figures; benchmarks/README.md records the latest ones.
BENCHMARKS := local_model chain_parsers capture_overhead runner server trace_render ray_scaling
bench: install
	@for b in $(BENCHMARKS); do echo "== benchmarks/$$b.py"; $(BIN)/python benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
