# chainkit: two commands set everything up on a fresh machine (Python >= 3.11 and make).
#   make demo   creates .venv, installs chainkit, runs `chainkit demo` on the embedded local model
#   make test   the same set-up, then lint, type checks and the whole test suite (and the
#               chains and callbacks tests on the lowest LangChain versions allowed, .venv-min,
#               and the OpenTelemetry export against Arize Phoenix, .venv-phoenix)

PYTHON ?= python3
VENV   ?= .venv
PYTEST_ARGS ?=
# The suite runs in 3 pytest-xdist workers: its tests mostly wait on servers and subprocesses,
# so the workers overlap those waits even on 2 cores. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck pytest pytest-min phoenix pytest-phoenix bench lab notebooks clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "chainkit needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,ray,otel]"
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
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The chains, callbacks and compat-seam tests once more, against the LOWEST langchain-core
# and langchain-openai that pyproject.toml allows (.ci/min_requirements.py reads them), in
# .venv-min, so the declared range is true. Wheels come from pip's cache after the first run.
VENV_MIN  := .venv-min
MIN_STAMP := $(VENV_MIN)/.installed-stamp

$(MIN_STAMP): pyproject.toml .ci/min_requirements.py
	$(PYTHON) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install --quiet -e . $$($(PYTHON) .ci/min_requirements.py)
	@touch $(MIN_STAMP)

pytest-min: $(MIN_STAMP)
	$(VENV_MIN)/bin/python -m pip list 2>/dev/null | grep -E '^langchain-(core|openai) '
	$(VENV_MIN)/bin/pytest -p no:cacheprovider tests/chains tests/callbacks tests/test_compat.py

# The OpenTelemetry export read back from a real third-party OTLP receiver: Arize Phoenix's
# server, in .venv-phoenix (it pins ~120 packages, ~850 MB, that must not touch .venv; the
# version is in tests/otel_phoenix/requirements.txt). The tests run in .venv and start its
# `phoenix serve` on loopback; the plain suite does not collect tests/otel_phoenix.
# uv installs it (from PyPI; UV_DEFAULT_INDEX for another index) in ~35 s where pip takes ~100.
VENV_PHOENIX  := .venv-phoenix
PHOENIX_STAMP := $(VENV_PHOENIX)/.installed-stamp

$(PHOENIX_STAMP): tests/otel_phoenix/requirements.txt
	$(PYTHON) -m venv $(VENV_PHOENIX)
	$(VENV_PHOENIX)/bin/python -m pip install --quiet 'uv>=0.13,<0.14'
	$(VENV_PHOENIX)/bin/uv pip install --quiet --python $(VENV_PHOENIX)/bin/python \
	  --compile-bytecode -r tests/otel_phoenix/requirements.txt
	@touch $(PHOENIX_STAMP)

phoenix: $(PHOENIX_STAMP)

pytest-phoenix: install $(PHOENIX_STAMP)
	CHAINKIT_PHOENIX=$(abspath $(VENV_PHOENIX))/bin/phoenix $(BIN)/pytest tests/otel_phoenix

# .venv-phoenix is built while the linters and type checks run (its install is mostly
# download and unpacking), then the test suites run one after another.
test:
	$(MAKE) -j2 --output-sync=target lint typecheck phoenix
	$(MAKE) pytest pytest-min pytest-phoenix

# Each benchmark prints its figures; benchmarks/README.md records the latest ones.
BENCHMARKS := local_model model_client chain_parsers capture_overhead otel_overhead runner server trace_render ray_scaling
bench: install
	@for b in $(BENCHMARKS); do echo "== benchmarks/$$b.py"; $(BIN)/python benchmarks/$$b.py || exit 1; done

# JupyterLab on notebooks/, in the project's venv with the `notebook` extra (its kernel is
# that venv's Python, so `import chainkit` works in every notebook).
NOTEBOOK_STAMP := $(VENV)/.notebook-stamp

$(NOTEBOOK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[notebook]"
	@touch $(NOTEBOOK_STAMP)

# (as root, in a container, JupyterLab refuses to start without --allow-root)
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(NOTEBOOK_STAMP)
	$(BIN)/jupyter lab $(LAB_ARGS) notebooks/

# Run every notebook top to bottom and store it with its outputs (tests/test_notebooks.py
# fails when the stored outputs are stale).
notebooks: install
	$(BIN)/python -m tests.notebook_outputs

clean:
	rm -rf $(VENV) $(VENV_MIN) $(VENV_PHOENIX) .venv-3.* .pytest_cache .mypy_cache .ruff_cache
